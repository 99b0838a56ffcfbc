"""The hashed n-gram index finds exactly what comparing word tuples at every position finds."""

import csv
import pickle
import random

import pytest

from lmaudit.contamination import EvalItem, build_index
from lmaudit.contamination.corpus import Batch
from lmaudit.contamination.fingerprints import token_hashes
from lmaudit.contamination.normalize import join_utf8, spaced_words, words


def _naive_hits(index, texts):
    """Every word tuple at every position of every document, looked up among the items' parts."""
    sizes = {len(gram) for parts in index.parts for gram in parts}
    found = set()
    for doc, text in enumerate(texts):
        tokens = words(text)
        at: dict[tuple, list[int]] = {}
        for size in sizes:
            for start in range(len(tokens) - size + 1):
                at.setdefault(tuple(tokens[start:start + size]), []).append(start)
        for item, parts in enumerate(index.parts):
            for part_index, gram in enumerate(parts):
                found.update((item, part_index, doc, start) for start in at.get(gram, []))
    return found


@pytest.mark.parametrize("n,min_words", [(13, 8), (5, 3)])
def test_index_matches_naive_search(data_dir, mmlu_items, n, min_words):
    rng = random.Random(n)
    with open(data_dir / "arxiv" / "arxiv_data_1000_tiagoft.csv", encoding="utf-8") as handle:
        documents = [row["summaries"] for row in csv.DictReader(handle)][:120]
    items = []
    for number in range(120):  # word runs cut from the documents, re-cased and re-punctuated, and real items
        tokens = rng.choice(documents).split()
        start = rng.randrange(len(tokens))
        items.append(EvalItem("cut", str(number), ", ".join(tokens[start:start + rng.randint(1, 3 * n)]).upper()))
    items += rng.sample(mmlu_items, 100)
    index = build_index("ngram", items, n=n, min_words=min_words)
    batch = Batch("memory")
    for line, text in enumerate(documents, start=1):
        batch.add(line, None, text)
    expected = _naive_hits(index, documents)
    assert len(expected) > 100
    assert {tuple(hit) for hit in index.scan(batch)} == expected
    # A worker gets the index pickled without its word tuples and must find the same.
    assert {tuple(hit) for hit in pickle.loads(pickle.dumps(index)).scan(batch)} == expected


def test_token_hashes_cut_words_as_split_does_and_hash_them_by_their_bytes(data_dir):
    news = data_dir / "ntrex128" / "NTREX-128"
    lines = []
    for language in ("ref.rus", "ref.zho-CN", "ref.hin", "src.eng"):
        lines += (news / f"newstest2019-{language}.txt").read_text(encoding="utf-8").splitlines()[:200]
    # Words of 1, 7, 8, 9, 16 and 17 bytes, at the very start and end, and longer than the hashed length.
    lines = ["abcdefgh " + lines[0], "a abcdefg abcdefghi abcdefghijklmnop abcdefghijklmnopq", "x" * 40, *lines,
             "x" * 41 + "y", "abcdefghijklmnopq"]
    spaced = spaced_words(join_utf8(lines)[0])
    starts, ends, hashes = token_hashes(spaced, 40)
    tokens = spaced.split()
    assert [spaced[b:e] for b, e in zip(starts.tolist(), ends.tolist())] == tokens
    by_token: dict[bytes, int] = {}
    for token, fingerprint in zip(tokens, hashes.tolist()):
        assert by_token.setdefault(token[:40], fingerprint) == fingerprint  # the same bytes, the same hash
    assert len(set(by_token.values())) == len(by_token)  # and here, different bytes, different hashes
