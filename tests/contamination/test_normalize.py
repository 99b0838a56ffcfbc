"""Normalisation: the fast batch path, the mapped path used for evidence and a plain reference agree."""

import csv

from hypothesis import given, settings
from hypothesis import strategies as st

from lmaudit.contamination.normalize import (
    join_utf8,
    normalize,
    normalize_batch,
    normalize_mapped,
    spaced_words,
    word_spans,
    words,
)


def reference(text: str) -> str:
    """The definition, spelled out: case-fold, keep characters that are letters or digits."""
    return "".join(c for c in text.casefold() if c.isalnum())


texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=80)
# Lone surrogates come out of JSON escapes such as "\ud800"; they are symbols and must vanish.
specials = st.sampled_from(["\ud800", "\udfff", "\x00", "ß", "İ", "ΣΑΣ"])
texts_with_surrogates = st.lists(st.one_of(texts, specials), max_size=5).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(texts_with_surrogates, min_size=1, max_size=6))
def test_fast_batch_path_equals_reference_and_mapped_path(batch):
    buffer, starts, size = normalize_batch(batch)
    assert size == sum(len(t.encode("utf-8", "surrogatepass")) for t in batch)
    pieces = buffer.split(b"\x00")
    assert len(pieces) == len(batch) == len(starts)
    for text, piece, start in zip(batch, pieces, starts):
        assert piece.decode("utf-8") == reference(text) == normalize(text)
        assert buffer[start:start + len(piece)] == piece
        mapped, positions = normalize_mapped(text)
        assert mapped == reference(text)
        # Every kept character comes from the original character it is mapped to.
        assert all(c in text[p].casefold() for c, p in zip(mapped, positions))
        assert positions == sorted(positions)


@settings(max_examples=200, deadline=None)
@given(texts)
def test_word_spans_cover_the_words_they_name(text):
    spans = word_spans(text)
    assert [w for w, _, _ in spans] == words(text)
    for word, begin, end in spans:
        assert reference(text[begin:end]) == word


def test_real_text_with_unicode_punctuation(data_dir):
    with open(data_dir / "arxiv" / "arxiv_data_3397_clopezvice.csv", encoding="utf-8") as handle:
        abstracts = [row["abstract"] for row in csv.DictReader(handle)][:400]
    assert any(not a.isascii() for a in abstracts)  # the fast path's non-ASCII branch is exercised
    buffer, _, _ = normalize_batch(abstracts)
    assert buffer.decode("utf-8").split("\x00") == [reference(a) for a in abstracts]
    assert normalize("The “Café” — naïve!") == "thecafénaïve"
    assert normalize("STRASSE") == normalize("straße") == "strasse"  # full case folding, not lower()
    assert normalize("ΟΔΟΣ") == normalize("οδος") == normalize("οδoς".replace("o", "ο"))  # final sigma folds too
    assert normalize("Hello,   WORLD!\n42_x") == "helloworld42x"


def test_real_text_in_other_scripts_folds_across_text_boundaries(data_dir):
    """Short news lines in Cyrillic, Chinese and Devanagari: non-ASCII stretches that span the separators
    between texts are folded together and must still come apart text by text."""
    news = data_dir / "ntrex128" / "NTREX-128"
    lines = []
    for language in ("ref.rus", "ref.zho-CN", "ref.hin", "ref.deu", "src.eng"):
        lines += (news / f"newstest2019-{language}.txt").read_text(encoding="utf-8").splitlines()[:300]
    lines += ["", "«»", "Ω", "x"]  # texts left empty, symbols only, one letter
    buffer, starts, _ = normalize_batch(lines)
    assert buffer.decode("utf-8").split("\x00") == [reference(line) for line in lines]
    assert len(starts) == len(lines)


def _words_per_text(batch: list[str]) -> list[bytes]:
    """`words` of each text in UTF-8, with b"\\x00" between two texts: what spaced_words(...).split() gives."""
    expected: list[bytes] = []
    for position, text in enumerate(batch):
        expected += [b"\x00"] if position else []
        expected += [word.encode("utf-8", "surrogatepass") for word in words(text)]
    return expected


@settings(max_examples=300, deadline=None)
@given(st.lists(texts_with_surrogates, min_size=1, max_size=6))
def test_batch_words_equal_words_per_text(batch):
    assert spaced_words(join_utf8(batch)[0]).split() == _words_per_text(batch)


def test_batch_words_on_real_text_in_other_scripts(data_dir):
    news = data_dir / "ntrex128" / "NTREX-128"
    lines = []
    for language in ("ref.rus", "ref.zho-CN", "ref.hin", "ref.ell", "src.eng"):
        lines += (news / f"newstest2019-{language}.txt").read_text(encoding="utf-8").splitlines()[:300]
    lines += ["", "İstanbul ΣΑΣ straße", "a\ud800b", "ǅx\u3000ﬁ", "日本語テキスト、中文。"]
    assert spaced_words(join_utf8(lines)[0]).split() == _words_per_text(lines)


def test_code_point_table_is_str_isalnum():
    from lmaudit.contamination.normalize import _kept_code_points

    table = _kept_code_points()
    expected = [chr(c).isalnum() for c in range(0x110000)]
    expected[0] = expected[1] = True  # NUL (between texts) and the stretch mark pass through
    assert table.tolist() == expected
