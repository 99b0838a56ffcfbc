"""Influence runs in a run directory (RunSession, kind "influence"): `fit_run` fits factors, `score_run` scores
queries against a corpus (fitting factors in the same directory unless given some).

    run/manifest.json        the session's manifest (identity, options, invocations)
    run/factors/             factors.json + factors.safetensors, and the stages' checkpoints
    run/samples.jsonl        one record per query: its measurement log p(completion | prompt) via the runner
    run/scores/part-*.npy    scores of each chunk of sequences, saved as they finish (a rerun skips them)
    run/scores.parquet       (query, sequence, score, rank, tfidf, one column per layer)
    run/tokens.jsonl         per-token scores of each query's top-k sequences
    run/results.json         the results envelope: top-k per query, how to read the scores
    run/influence.png|.html  the top sequences with their tokens coloured by influence
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError
from lmaudit.core.results import MetricRow, envelope
from lmaudit.core.types import LoglikelihoodRequest, SampleRecord, to_dict
from lmaudit.influence import report
from lmaudit.influence.candidates import CandidateSet, tfidf_candidates
from lmaudit.influence.data import (
    Query,
    TrainingSequence,
    corpus_digests,
    corpus_sequences,
    encode_queries,
    queries_digest,
    read_documents,
)
from lmaudit.influence.estimator import InfluenceEstimator, ScoreResult, _stderr
from lmaudit.influence.factors import FACTORS_META, Factors, FactorSettings
from lmaudit.influence.modules import select_layers
from lmaudit.models.base import require_white_box
from lmaudit.runner.session import ModelRole, RunSession

FACTORS_DIR, PARTS_DIR = "factors", "scores"


@dataclass(frozen=True)
class CorpusSpec:
    """Training data: files, globs or folders, cut into sequences of `seq_len` tokens (`sample`: a seeded sample
    of that many documents)."""

    patterns: tuple[str, ...]
    seq_len: int = 128
    text_field: str = "text"
    id_field: str = "id"
    sample: int | None = None

    def sequences(self, model: Any, seed: int) -> list[TrainingSequence]:
        return corpus_sequences(model, self.patterns, self.seq_len, text_field=self.text_field,
                                id_field=self.id_field, sample=self.sample, seed=seed)

    def identity(self) -> dict[str, Any]:
        return {**asdict(self), "files": corpus_digests(self.patterns)}


@dataclass(frozen=True)
class RunOptions:
    batch_size: int = 8
    chunk_size: int = 64
    executor: str = "local"
    workers: int = 1
    checkpoint_seconds: float = 30.0
    progress: bool = True
    include_tied: bool = False
    shared_cache: bool = True
    cache_path: str | None = None


@dataclass
class InfluenceRun:
    run_dir: Path
    results: dict[str, Any]
    factors: Factors
    scores: ScoreResult | None = None
    sequences: list[TrainingSequence] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _estimator(model: Any, modules: Sequence[str], settings: FactorSettings, options: RunOptions,
               model_spec: str | None, model_options: dict[str, Any] | None,
               log: Callable[[str], None] | None) -> InfluenceEstimator:
    layers = select_layers(model.module, modules, include_tied=options.include_tied)
    return InfluenceEstimator(model, layers, settings, batch_size=options.batch_size, chunk_size=options.chunk_size,
                              executor=options.executor, workers=options.workers, model_spec=model_spec,
                              model_options=model_options, checkpoint_seconds=options.checkpoint_seconds,
                              progress=options.progress, log=log)


def _open(output_dir: str | Path | None, model: Any, model_spec: str | None, identity: dict[str, Any],
          options: dict[str, Any], command: list[str] | None, run: RunOptions, corpus: CorpusSpec) -> RunSession:
    return RunSession.open(output_dir, kind="influence", identity=identity,
                           roles=[ModelRole("target", model, model_spec)], command=command, options=options,
                           dataset_hashes=identity.get("corpus", {}).get("files", {}) or corpus_digests(corpus.patterns),
                           cache_path=run.cache_path, shared_cache=run.shared_cache, progress=run.progress,
                           name=f"influence-{model.name}")


def fit_run(model: Any, *, modules: Sequence[str], corpus: CorpusSpec, settings: FactorSettings | None = None,
            output_dir: str | Path | None = None, model_spec: str | None = None,
            model_options: dict[str, Any] | None = None, options: RunOptions | None = None,
            command: list[str] | None = None, log: Callable[[str], None] | None = _stderr) -> InfluenceRun:
    """Fit the factors of the layers matching `modules` on `corpus`; resumable, results in a run directory."""
    model = require_white_box(model, "influence")
    settings, options = settings or FactorSettings(), options or RunOptions()
    estimator = _estimator(model, modules, settings, options, model_spec, model_options, log)
    identity = {"stage": "fit", "modules": [layer.name for layer in estimator.layers], "settings": settings.to_dict(),
                "corpus": corpus.identity(), "seed": settings.seed, "batch_size": options.batch_size,
                "chunk_size": options.chunk_size}
    with _open(output_dir, model, model_spec, identity, {"run": asdict(options)}, command, options,
               corpus) as session:
        sequences = corpus.sequences(model, settings.seed)
        log and log(f"fitting {settings.strategy} ({settings.fisher} Fisher) on {len(sequences):,} sequences of "
                    f"up to {corpus.seq_len} tokens")
        try:
            factors = estimator.fit(sequences, session.run.path / FACTORS_DIR)
        finally:
            estimator.close()
        metrics = [MetricRow("sequences", factors.sequences), MetricRow("tokens", factors.tokens)]
        metrics += [MetricRow("damping", value, group=f"layer={name}") for name, value in factors.dampings().items()]
        session.note(stage_seconds=estimator.timings)
        results = session.finish(envelope("influence", metrics, stage="fit", strategy=settings.to_dict(),
                                          layers=[layer.name for layer in estimator.layers], factors=FACTORS_DIR))
    return InfluenceRun(session.run.path, results, factors, sequences=sequences, timings=estimator.timings)


def resolve_factors(path: str | Path) -> Path:
    """A factors folder, or a fit run directory holding one."""
    path = Path(path)
    if (path / FACTORS_DIR / FACTORS_META).exists():
        return path / FACTORS_DIR
    if (path / FACTORS_META).exists():
        return path
    raise ConfigError(f"{path} holds no fitted factors (no {FACTORS_META}, nor {FACTORS_DIR}/{FACTORS_META}); "
                      f"run `lmaudit influence fit` first")


def score_run(model: Any, queries: Sequence[Query], *, modules: Sequence[str], corpus: CorpusSpec,
              settings: FactorSettings | None = None, factors_dir: str | Path | None = None,
              fit_corpus: CorpusSpec | None = None, candidates: int | None = None, top_k: int = 10,
              query_rank: int | None = None, output_dir: str | Path | None = None, model_spec: str | None = None,
              model_options: dict[str, Any] | None = None, options: RunOptions | None = None,
              command: list[str] | None = None, log: Callable[[str], None] | None = _stderr) -> InfluenceRun:
    """Score every query against the corpus (or its TF-IDF candidates); resumable, results in a run directory."""
    model = require_white_box(model, "influence")
    settings, options = settings or FactorSettings(), options or RunOptions()
    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {top_k}")
    estimator = _estimator(model, modules, settings, options, model_spec, model_options, log)
    encoded = encode_queries(model, queries)  # refuses a query longer than the context, before any slow work
    external = resolve_factors(factors_dir) if factors_dir is not None else None
    if external is not None:
        given = Factors.load(external)
        given.check_matches(model.fingerprint(), estimator.layers, str(external))
        settings = given.settings
    identity = {"stage": "scores", "modules": [layer.name for layer in estimator.layers],
                "settings": settings.to_dict(), "corpus": corpus.identity(), "seed": settings.seed,
                "queries": queries_digest(queries), "candidates": candidates, "top_k": top_k,
                "query_rank": query_rank, "batch_size": options.batch_size, "chunk_size": options.chunk_size,
                "factors": None if external is None else (external / FACTORS_META).read_text(encoding="utf-8"),
                "fit_corpus": None if fit_corpus is None else fit_corpus.identity()}
    with _open(output_dir, model, model_spec, identity, {"run": asdict(options)}, command, options,
               corpus) as session:
        started = time.perf_counter()
        logprobs = _measure(session, encoded)
        chosen: CandidateSet | None = None
        if candidates is not None:
            chosen = tfidf_candidates(queries, lambda: read_documents(corpus.patterns, text_field=corpus.text_field,
                                                                      id_field=corpus.id_field),
                                      model, corpus.seq_len, candidates, progress=options.progress)
            sequences = chosen.sequences
            log and log(f"tf-idf kept {len(sequences):,} candidate sequences from {chosen.documents_kept:,} of "
                        f"{chosen.documents_scanned:,} documents")
        else:
            sequences = corpus.sequences(model, settings.seed)
        try:
            if external is not None:
                factors = Factors.load(external)
            else:
                fit_on = fit_corpus.sequences(model, settings.seed) if fit_corpus is not None else sequences
                same = [s.sequence_id for s in fit_on] == [s.sequence_id for s in sequences]
                factors = estimator.fit(fit_on, session.run.path / FACTORS_DIR, keep_for_scores=same)
            result = estimator.scores(factors, encoded, sequences, session.run.path / PARTS_DIR, rank=query_rank)
            entries = report.top_entries(result, sequences, top_k)
            wanted = list({e.sequence.sequence_id: e.sequence for e in entries}.values())
            values = estimator.token_scores(result.query_gradients, wanted)
            passes = estimator.model_passes
        finally:
            estimator.close()
        column = {qid: i for i, qid in enumerate(result.query_ids)}
        row = {sequence.sequence_id: i for i, sequence in enumerate(wanted)}
        token_values = {(e.query_id, e.sequence.sequence_id): values[row[e.sequence.sequence_id]][column[e.query_id]]
                        for e in entries}
        path = session.run.path
        report.write_scores(path / report.SCORES, result, sequences, chosen)
        rows = report.token_rows(model, entries, token_values, encoded)
        report.write_tokens(path / report.TOKENS, rows, entries)
        report.write_pictures(path, rows, title=f"influence on {model.name}: top sequences "
                                                f"per query ({settings.strategy})")
        gap = max(abs(a - logprobs[q.query.query_id]) for a, q in zip(result.measurements, encoded))
        timings = {**estimator.timings, "total": time.perf_counter() - started}
        session.note(stage_seconds=timings, measurement_gap=gap, chunk_passes=passes, scoring_basis=estimator.basis)
        results = session.finish(report.results_envelope(
            result, entries, encoded, factors, logprobs, candidates=chosen, sequences=len(sequences),
            details={"query_rank": query_rank}))
    return InfluenceRun(path, results, factors, result, list(sequences), timings)


def _measure(session: RunSession, encoded: Sequence[Any]) -> dict[str, float]:
    """log p(completion | prompt) of every query through the runner (cached), one sample record per query."""
    requests = [LoglikelihoodRequest(q.query.prompt, q.query.completion) for q in encoded]
    answers = session.call("target", requests, label="query measurements")
    done = {record.sample_id for record in session.records()}
    records = [SampleRecord(task="influence", sample_id=q.query.query_id, target=q.query.completion, metadata={},
                            requests=[to_dict(request)], responses=[to_dict(answer)],
                            scores={"logprob": answer.logprob, "completion_tokens": float(q.completion_tokens)})
               for q, request, answer in zip(encoded, requests, answers) if q.query.query_id not in done]
    session.append(records)
    return {q.query.query_id: answer.logprob for q, answer in zip(encoded, answers)}
