"""The hashed n-gram index finds exactly what comparing word tuples at every position finds."""

import csv
import pickle
import random

import pytest

from lmaudit.contamination import EvalItem, build_index
from lmaudit.contamination.corpus import Batch
from lmaudit.contamination.normalize import words


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
