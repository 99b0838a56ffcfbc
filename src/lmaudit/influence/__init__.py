"""Influence functions (EK-FAC): which training sequences made a model say this, where in them, and in which layers.

    from lmaudit.influence import CorpusSpec, FactorSettings, Query, score_run
    run = score_run(load_model("smollm2"), [Query("q0", "The capital of France is", " Paris")],
                    modules=["layers.*.mlp.*"], corpus=CorpusSpec(("corpus/*.jsonl.gz",)), candidates=1000,
                    output_dir="runs/influence")
    run.results["queries"][0]["top"]  # the most influential sequences, with their per-layer scores

The estimator (`InfluenceEstimator`) can be used without a run directory; `lmaudit.influence.reference` holds
the exact computations the approximations are checked against. torch is imported only when a model runs.
"""

from lmaudit.influence.candidates import CandidateSet, tfidf_candidates
from lmaudit.influence.data import (Document, EncodedQuery, Query, TrainingSequence, chunk_documents,
                                    corpus_sequences, encode_queries, read_documents, read_queries)
from lmaudit.influence.estimator import InfluenceEstimator, ScoreResult
from lmaudit.influence.factors import COVARIANCES, FISHERS, STRATEGIES, FactorSettings, Factors
from lmaudit.influence.modules import TrackedLayer, linear_layers, select_layers
from lmaudit.influence.report import HOW_TO_READ
from lmaudit.influence.run import CorpusSpec, InfluenceRun, RunOptions, fit_run, resolve_factors, score_run

__all__ = [
    "CandidateSet", "tfidf_candidates", "Document", "EncodedQuery", "Query", "TrainingSequence", "chunk_documents",
    "corpus_sequences", "encode_queries", "read_documents", "read_queries", "InfluenceEstimator", "ScoreResult",
    "COVARIANCES", "FISHERS", "STRATEGIES", "FactorSettings", "Factors", "TrackedLayer", "linear_layers",
    "select_layers", "HOW_TO_READ", "CorpusSpec", "InfluenceRun", "RunOptions", "fit_run", "resolve_factors",
    "score_run",
]
