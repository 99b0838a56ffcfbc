"""A planted source: one document holding a query's completion, among 1,000 arXiv abstracts, ranks first for that
query with EK-FAC and the TF-IDF candidate filter on."""

from __future__ import annotations

import json

import pytest

from lmaudit.influence import (
    CorpusSpec,
    FactorSettings,
    Query,
    RunOptions,
    score_run,
    tfidf_candidates,
)
from lmaudit.influence.data import read_documents
from lmaudit.influence.reference import fold_text

PROMPT, COMPLETION = "a cell is called", " a hot neon"  # every character is in the tiny alphabet


@pytest.fixture(scope="module")
def planted_corpus(tmp_path_factory, abstracts):
    folder = tmp_path_factory.mktemp("planted")
    rows = [{"id": f"arxiv-{i}", "text": fold_text(text)} for i, text in enumerate(abstracts[:1000])]
    rows.insert(517, {"id": "planted", "text": PROMPT + COMPLETION})
    path = folder / "corpus.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_the_planted_document_is_a_candidate_and_ranks_first(tiny, planted_corpus, tmp_path):
    query = Query("planted-query", PROMPT, COMPLETION)
    found = tfidf_candidates([query], lambda: read_documents([planted_corpus]), tiny, 32, 40)
    assert found.documents_scanned == 1001 and found.per_query["planted-query"][0] == "planted#0"
    run = score_run(tiny, [query], modules=["layers.*"], corpus=CorpusSpec((str(planted_corpus),), seq_len=32),
                    fit_corpus=CorpusSpec((str(planted_corpus),), seq_len=32, sample=30),
                    settings=FactorSettings(strategy="ekfac"), candidates=40, top_k=5, output_dir=tmp_path / "run",
                    options=RunOptions(progress=False, shared_cache=False), log=None)
    top = run.results["queries"][0]["top"]
    assert top[0]["sequence_id"] == "planted#0", top
    assert top[0]["score"] > top[1]["score"] > 0
    assert run.results["candidate_filter"] == {"documents_scanned": 1001, "documents_kept": 40,
                                               "sequences": len(run.sequences)}
    assert 40 <= len(run.sequences) < 400  # only the candidates were differentiated, not the whole corpus
