"""Training sequences from the corpus readers, the fitting sample, queries from files, and their errors."""

from __future__ import annotations

import json

import pytest

from lmaudit.core.errors import ConfigError, DataError, RowError
from lmaudit.influence import (
    Document,
    chunk_documents,
    corpus_sequences,
    read_documents,
    read_queries,
)
from lmaudit.influence.data import sample_documents


def test_documents_are_cut_into_sequences_that_rebuild_them(tiny, tiny_corpus):
    documents = list(read_documents([tiny_corpus]))
    sequences = chunk_documents(tiny, documents[:3], 16)
    for document in documents[:3]:
        mine = [s for s in sequences if s.document_id == document.document_id]
        assert [s.sequence_id for s in mine] == [f"{document.document_id}#{k}" for k in range(len(mine))]
        assert all(2 <= len(s.tokens) <= 16 for s in mine) and mine[0].tokens[0] == 0  # the separator first
        rebuilt = [t for s in mine for t in s.tokens]
        assert rebuilt == [0] + tiny.encode(document.text, add_special_tokens=False)[:len(rebuilt) - 1]
    with pytest.raises(ConfigError, match="longer than the model's context"):
        chunk_documents(tiny, documents, 64)


def test_the_fitting_sample_is_seeded_uniform_and_in_corpus_order():
    documents = [Document(f"d{i}", "x") for i in range(200)]
    first = sample_documents(documents, 20, seed=1)
    assert first == sample_documents(documents, 20, seed=1) != sample_documents(documents, 20, seed=2)
    assert len(first) == 20 and [d.document_id for d in first] == sorted((d.document_id for d in first),
                                                                       key=lambda i: int(i[1:]))
    assert sample_documents(documents[:5], 20, seed=1) == documents[:5]


def test_corpus_errors_name_what_is_wrong(tiny, tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(RowError, match="broken.jsonl, line 2, field 'text'"):
        corpus_sequences(tiny, [broken], 16)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n")
    with pytest.raises(DataError, match="holds no document"):
        corpus_sequences(tiny, [blank], 16)


def test_queries_come_from_a_table_with_row_errors(tmp_path):
    good = tmp_path / "q.jsonl"
    good.write_text(json.dumps({"prompt": "a", "completion": " b"}) + "\n" +
                    json.dumps({"id": "x", "prompt": "c", "completion": " d"}) + "\n")
    assert [(q.query_id, q.prompt, q.completion) for q in read_queries(good)] == [("q0", "a", " b"), ("x", "c", " d")]
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps({"prompt": "a"}) + "\n")
    with pytest.raises(RowError, match="missing.jsonl, line 1, field 'completion'"):
        read_queries(missing)
    twice = tmp_path / "twice.csv"
    twice.write_text("id,prompt,completion\nq,a,b\nq,c,d\n")
    with pytest.raises(RowError, match="line 3, field 'id': duplicate query id 'q'"):
        read_queries(twice)
