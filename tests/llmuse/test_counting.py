"""Corpus-scale counting through the contamination readers: a process pool and Ray count exactly what a single
process counts, on a multi-file JSONL/Parquet corpus and on one file shared out in pieces."""

import gzip
import json

import numpy as np
import pytest

from lmaudit.core.errors import RowError
from lmaudit.llmuse.counting import target_sentences
from lmaudit.llmuse.text import word_sets
from lmaudit.llmuse.vocabulary import build_vocabulary


@pytest.fixture(scope="module")
def corpus(abstracts, tmp_path_factory):
    """The 2025 abstracts as three JSONL files (one gzipped) and a Parquet file, with a category field."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("corpus")
    texts = abstracts["new"][:800]
    categories = ["math.AP", "math.CO", "['math.NT', 'math.AG']", "math.OC"]
    rows = [{"text": t, "category": categories[i % 4], "id": f"d{i}"} for i, t in enumerate(texts)]
    for name, part in (("a.jsonl", rows[:250]), ("b.jsonl", rows[250:450])):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in part))
    with gzip.open(folder / "c.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows[450:650])
    pq.write_table(pa.Table.from_pylist(rows[650:]), folder / "d.parquet")
    whole = tmp_path_factory.mktemp("whole") / "all.jsonl"
    whole.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder, whole, texts


@pytest.fixture(scope="module")
def vocabulary(abstracts):
    sets = word_sets(abstracts["old"][:300] + abstracts["new"][900:1200])
    return build_vocabulary(sets[:len(sets) // 2], sets[len(sets) // 2:]).words


def _same(a, b):
    (groups_a, docs_a), (groups_b, docs_b) = a, b
    assert docs_a == docs_b and list(groups_a) == list(groups_b)
    for g in groups_a:
        assert np.array_equal(groups_a[g].owners, groups_b[g].owners)
        assert (groups_a[g].rows != groups_b[g].rows).nnz == 0


def test_pool_and_pieces_equal_one_process(corpus, vocabulary):
    folder, whole, texts = corpus
    single = target_sentences([folder], vocabulary, group_field="category", progress=False)
    assert sum(single[1].values()) == len(texts) and set(single[0]) == {"math.AP", "math.CO", "math.NT", "math.OC"}
    _same(single, target_sentences([folder], vocabulary, group_field="category", workers=2, progress=False))
    # one file cut into pieces at line boundaries counts every sentence once, in the same order
    pieces = target_sentences([whole], vocabulary, group_field="category", workers=2,
                              piece_bytes=whole.stat().st_size // 5, progress=False)
    _same(target_sentences([whole], vocabulary, group_field="category", progress=False), pieces)
    prefixed = target_sentences([folder], vocabulary, group_field="category", group_prefix=True, progress=False)
    assert list(prefixed[0]) == ["math"] and prefixed[0]["math"].n == sum(m.n for m in single[0].values())


@pytest.mark.slow
def test_ray_equals_local(corpus, vocabulary):
    import ray

    folder, whole, _ = corpus
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        _same(target_sentences([folder], vocabulary, group_field="category", progress=False),
              target_sentences([folder], vocabulary, group_field="category", executor="ray", workers=2,
                               progress=False))
        _same(target_sentences([whole], vocabulary, group_field="category", progress=False),
              target_sentences([whole], vocabulary, group_field="category", executor="ray", workers=2,
                               piece_bytes=whole.stat().st_size // 4, progress=False))
    finally:
        ray.shutdown()


def test_a_document_without_its_group_is_named(tmp_path, vocabulary):
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"text": "We study graphs. Graphs are fun.", "venue": "A"}) + "\n"
                    + json.dumps({"text": "We prove a theorem. It holds."}) + "\n")
    with pytest.raises(RowError, match=r"docs\.jsonl, line 2, field 'venue': missing or empty group"):
        target_sentences([path], vocabulary, group_field="venue", progress=False)
