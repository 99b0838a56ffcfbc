"""Acceptance: perturbed MMLU items injected into a real corpus are all found; the clean corpus flags nothing."""

import pytest

from lmaudit.contamination import read_flags, scan_corpus, scan_index, write_flags
from lmaudit.contamination.normalize import normalize
from lmaudit.core.errors import DataError


def test_substring_recall_on_injected_items_and_nothing_on_the_clean_corpus(
        substring_index, clean_corpus, dirty_corpus, tmp_path):
    folder, injections = dirty_corpus
    assert len({inj.source for inj in injections}) >= 5  # items went into many files of every format

    clean = scan_index(substring_index, [clean_corpus], progress=False)
    assert len(clean.flags) == 14042
    assert [f.key for f in clean.flags if f.contaminated] == []
    assert clean.stats.files == 11 and clean.stats.documents > 18000

    dirty = scan_index(substring_index, [str(folder / "*")], progress=False)
    flagged = {f.key: f for f in dirty.flags if f.contaminated}
    injected = {inj.item.key for inj in injections}
    assert injected <= set(flagged)  # recall 100%
    # Precision: what a plain `in` over the injected texts finds for each item's parts, and nothing else
    # (the injected items, and any exact duplicate of one elsewhere in MMLU).
    texts = [normalize(inj.text) for inj in injections]
    expected = {item.key for item, parts in zip(substring_index.items, substring_index.parts)
                if any(p in t for p in parts for t in texts)}
    assert set(flagged) == expected and len(expected - injected) <= 3

    for injection in injections:
        flag = flagged[injection.item.key]
        evidence = flag.evidence[0]
        assert flag.score > 0 and flag.n_documents == 1
        assert (evidence.source, evidence.line) == (injection.source, injection.line)
        assert normalize(evidence.text) in normalize(injection.text)  # the evidence is the leaked text itself
        assert len(normalize(evidence.text)) == min(50, len(normalize(injection.item.text)))

    assert read_flags(write_flags(dirty.flags, tmp_path / "flags.jsonl")) == {f.key: f for f in dirty.flags}


def test_ngram_finds_injected_items_that_keep_their_words(ngram_index, clean_corpus, dirty_corpus):
    folder, injections = dirty_corpus
    assert not [f for f in scan_index(ngram_index, [clean_corpus], progress=False).flags if f.contaminated]
    result = {f.key: f for f in scan_index(ngram_index, [folder], progress=False).flags}
    found = 0
    for injection in injections:
        flag = result[injection.item.key]
        if flag.contaminated:
            found += 1
            assert (flag.evidence[0].source, flag.evidence[0].line) == (injection.source, injection.line)
    # Word n-grams break where a perturbation dropped a hyphen inside a word ("sub-optimal" -> "suboptimal"),
    # which normalised substrings survive, and items under 8 words are not checked: recall is lower.
    assert 0.8 * len(injections) <= found < len(injections)


@pytest.mark.parametrize("bad,message", [
    ('{"text": "fine"}\n{"text": 5}\n', "line 2, field 'text': expected a string"),
    ('{"text": "fine"}\nnot json\n', "line 2: invalid JSON"),
    ('{"body": "x"}\n', "line 1, field 'text': missing field"),
])
def test_malformed_corpus_lines_name_file_line_and_field(mmlu_items, tmp_path, bad, message):
    path = tmp_path / "corpus.jsonl"
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        scan_corpus(mmlu_items[:50], [path], progress=False)
    assert str(path) in str(info.value)
