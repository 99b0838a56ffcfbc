"""The estimator: fit the factors of a model's tracked layers on training sequences, then score queries.

    estimator = InfluenceEstimator(model, select_layers(model.module, ["layers.*.mlp.*"]), FactorSettings())
    factors = estimator.fit(sequences, run_dir / "factors")
    result = estimator.scores(factors, encode_queries(model, queries), sequences, run_dir / "scores")

Every stage says what memory it needs first and refuses when that will not fit; fitting stages checkpoint their
sums (and the eigendecomposition) in the factors folder and scores are saved chunk by chunk, so a killed run
continues where it stopped.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError, DataError, UnknownNameError
from lmaudit.influence import memory
from lmaudit.influence.data import EncodedQuery, TrainingSequence
from lmaudit.influence.engine import (
    EXECUTORS,
    LocalExecutor,
    RayExecutor,
    Worker,
    chunked,
    plan_digest,
    run_scores,
    run_stage,
)
from lmaudit.influence.factors import Factors, FactorSettings, build_factors, cast_bases, kronecker_bases
from lmaudit.influence.gradients import batch_gradients, gradient_dtype
from lmaudit.influence.modules import TrackedLayer
from lmaudit.influence.scoring import QueryGradients, query_gradients
from lmaudit.influence.sums import Sums

EIGEN_FILE = "eigen.safetensors"


def _stderr(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


@dataclass
class ScoreResult:
    """Scores of every (training sequence, query) pair, per tracked layer, and how they were computed."""

    query_ids: list[str]
    sequence_ids: list[str]
    per_layer: Any  # (sequences, queries, layers) float64; the total is the sum over the last axis
    layer_names: list[str]
    measurements: list[float]  # log p(completion | prompt) per query, from the gradient pass
    low_rank_errors: dict[str, dict[str, float]] = field(default_factory=dict)
    query_gradients: QueryGradients | None = None

    @property
    def total(self) -> Any:
        return self.per_layer.sum(axis=-1)


class InfluenceEstimator:
    def __init__(self, model: Any, layers: Sequence[TrackedLayer], settings: FactorSettings, *,
                 batch_size: int = 8, chunk_size: int = 64, executor: str = "local", workers: int = 1,
                 model_spec: str | None = None, model_options: dict[str, Any] | None = None,
                 cache_fraction: float = 0.25, checkpoint_seconds: float = 30.0, progress: bool = False,
                 log: Callable[[str], None] | None = _stderr):
        if executor not in EXECUTORS:
            raise UnknownNameError("executor", executor, list(EXECUTORS))
        if batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
        if executor == "ray" and not model_spec:
            raise ConfigError("executor 'ray' loads the model in every worker: give the model spec (model_spec)")
        self.model, self.layers, self.settings = model, list(layers), settings
        self.batch_size, self.chunk_size = batch_size, chunk_size
        self.executor_name, self.workers = executor, workers
        self.model_spec, self.model_options = model_spec, dict(model_options or {})
        self.cache_fraction, self.checkpoint_seconds = cache_fraction, checkpoint_seconds
        self.progress, self.log = progress, log or (lambda message: None)
        self.timings: dict[str, float] = {}
        self.basis = "original"  # the basis the last scores were computed in ("eigen": Kronecker eigenbasis)
        self._executor: Any = None
        self._groups: dict[str, str] | None = None

    # -- shared pieces ----------------------------------------------------------------------------------
    @property
    def groups(self) -> dict[str, str]:
        """Which tracked layers read the same input (and so share an input factor), from a two-token pass."""
        if self._groups is None:
            probe = batch_gradients(self.model, self.layers, [[0, 0]], fit=None, data=True)
            self._groups = probe.input_groups
        return self._groups

    def executor(self, replay_tokens: int = 0, gradient_sets: int = 1) -> Any:
        if self._executor is None:
            worker = Worker(self.model, self.layers, self.settings, self.batch_size)
            if self.executor_name == "ray":
                self._executor = RayExecutor(self.model_spec, self.model_options, self.layers, self.settings,
                                             self.batch_size, self.workers, self.model.fingerprint())
            else:
                need = memory.replay_bytes(self.layers, replay_tokens, gradient_sets, self.groups)
                budget = self.cache_fraction * memory.available_bytes(self.model.device)
                self._executor = LocalExecutor(worker, cache_bytes=int(budget) if 0 < need <= budget else 0)
                if self._executor.cache_bytes:
                    self.log(f"keeping the fitting pass's gradients for replay ({memory.human(need)}): "
                             f"later passes over the same sequences run no model")
        return self._executor

    @property
    def model_passes(self) -> int:
        """Chunks run through the model so far (forward and backward); replayed chunks do not count."""
        return 0 if self._executor is None else self._executor.model_passes

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None

    def _timed(self, stage: str, started: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - started

    def _identity(self, stage: str, digest: str) -> dict[str, Any]:
        return {"stage": stage, "plan": digest, "settings": self.settings.to_dict(),
                "layers": [layer.to_dict() for layer in self.layers], "model": self.model.fingerprint(),
                "batch_size": self.batch_size}

    # -- fitting -----------------------------------------------------------------------------------------
    def fit(self, sequences: Sequence[TrainingSequence], folder: str | Path, *,
            keep_for_scores: bool = False) -> Factors:
        """Fit (or resume fitting) the factors on `sequences`; saved in `folder`. `keep_for_scores`: the same
        sequences will be scored next, so their data gradients are kept too when the replay cache is used."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        settings = self.settings
        if not sequences:
            raise DataError("no training sequence to fit the factors on")
        counts = {"sequences": len(sequences), "tokens": sum(len(s.tokens) for s in sequences)}
        if settings.strategy == "identity":
            factors = build_factors(settings, self.layers, self.model.fingerprint(), groups=self.groups, counts=counts)
            factors.save(folder)
            return factors
        chunks = chunked(sequences, self.chunk_size)
        digest = plan_digest(chunks)
        width = max(len(s.tokens) for s in sequences)
        sets = 1 + int(keep_for_scores and settings.fisher == "true")
        executor = self.executor(counts["tokens"] if len(settings.stages) > 1 or keep_for_scores else 0, sets)
        sums: dict[str, Sums] = {}
        bases = None
        for stage in settings.stages:
            memory.fit_plan(self.model, self.layers, settings.strategy, stage, self.batch_size, width,
                            self.groups).check(self.log)
            payload = None
            if stage == "lambda":
                payload = cast_bases({name: (b[0], b[2]) for name, b in bases.items()}, gradient_dtype(self.model))
            started = time.perf_counter()
            sums[stage] = run_stage(executor, stage, chunks, payload, checkpoint=folder / f"{stage}.safetensors",
                                    identity=self._identity(stage, digest), progress=self.progress,
                                    checkpoint_seconds=self.checkpoint_seconds, keep_data=keep_for_scores)
            self._timed(stage, started)
            if stage == "covariance":
                started = time.perf_counter()
                # The factors file is written right after the last stage: only a later stage needs a checkpoint.
                bases = self._eigen(folder, sums["covariance"], self._identity("eigen", digest),
                                    keep=stage != settings.stages[-1])
                self._timed("eigendecomposition", started)
        factors = build_factors(settings, self.layers, self.model.fingerprint(), groups=self.groups,
                                diagonal=sums.get("diagonal"), bases=bases, lambdas=sums.get("lambda"),
                                counts=counts)
        factors.save(folder)
        return factors

    def _eigen(self, folder: Path, covariance: Sums, identity: dict[str, Any], keep: bool) -> dict[str, tuple]:
        """The Kronecker eigenbases, from the checkpoint when this very covariance was decomposed before; `keep`:
        checkpoint them."""
        path = folder / EIGEN_FILE
        if path.exists():
            saved, meta = Sums.load(path)
            if meta.get("identity") == identity:
                return {layer.name: tuple(saved.tensors[f"{part}:{layer.name}"] for part in ("QS", "sigma", "QA",
                                                                                             "alpha"))
                        for layer in self.layers}
        self.log(f"eigendecomposition of {len(self.layers)} gradient and {len(set(self.groups.values()))} input "
                 f"factors (float64)")
        bases = kronecker_bases(covariance, self.layers, self.groups, self.settings)
        if not keep:
            return bases
        store = Sums({f"{part}:{name}": tensor.contiguous().clone()
                      for name, values in bases.items() for part, tensor in zip(("QS", "sigma", "QA", "alpha"), values)})
        store.save(path, identity=identity)
        return bases

    # -- scoring -----------------------------------------------------------------------------------------
    def query_gradients(self, factors: Factors, queries: Sequence[EncodedQuery], rank: int | None,
                        eigenbasis: bool = False) -> QueryGradients:
        started = time.perf_counter()
        result = query_gradients(self.model, self.layers, queries, factors, batch_size=self.batch_size, rank=rank,
                                 seed=self.settings.seed, eigenbasis=eigenbasis, progress=self.progress)
        self._timed("query gradients", started)
        return result

    def scores(self, factors: Factors, queries: Sequence[EncodedQuery], sequences: Sequence[TrainingSequence],
               parts: str | Path, *, rank: int | None = None) -> ScoreResult:
        """Every query against every sequence, per layer; chunks already saved under `parts` are reused."""
        factors.check_matches(self.model.fingerprint(), self.layers, "the factors given")
        if not sequences:
            raise DataError("no training sequence to score")
        width = max(max(len(s.tokens) for s in sequences), max(len(q.tokens) for q in queries))
        memory.score_plan(self.model, self.layers, factors.settings.strategy, len(queries), len(sequences), rank,
                          self.batch_size, width, self.groups).check(self.log)
        chunks = chunked(sequences, self.chunk_size)
        self.basis = "eigen" if self._eigenbasis_is_cheaper(factors, chunks, len(queries)) else "original"
        grads = self.query_gradients(factors, queries, rank, eigenbasis=self.basis == "eigen")
        started = time.perf_counter()
        identity = {"plan": plan_digest(chunks), "queries": [(q.query.query_id, list(q.tokens), q.completion_start)
                                                             for q in queries],
                    "factors": {"settings": factors.settings.to_dict(), "dampings": factors.dampings(),
                                "model": factors.model_fingerprint, "sequences": factors.sequences},
                    "layers": [layer.name for layer in self.layers], "rank": rank}
        per_layer = run_scores(self.executor(), chunks, grads, parts=Path(parts), identity=identity,
                               progress=self.progress)
        self._timed("scores", started)
        return ScoreResult(grads.query_ids, [s.sequence_id for s in sequences], per_layer,
                           [layer.name for layer in self.layers], grads.measurements, grads.errors, grads)

    def _eigenbasis_is_cheaper(self, factors: Factors, chunks: Sequence[Sequence[TrainingSequence]],
                               queries: int) -> bool:
        """Score in the Kronecker eigenbasis when rotating the training factors (T (out^2 + in^2) per sequence and
        layer, nothing when the refit left them rotated) costs less than rotating every query's preconditioned
        gradient back (out in (out + in) per query and layer)."""
        if factors.bases() is None:
            return False
        executor = self.executor()
        if isinstance(executor, LocalExecutor) and executor.rotated(chunks):
            return True
        tokens = sum(len(s.tokens) for chunk in chunks for s in chunk)
        heads = {self.groups[layer.name]: layer.in_dim for layer in self.layers}
        rotation = tokens * (sum(layer.out_features ** 2 for layer in self.layers) + sum(d * d for d in heads.values()))
        back = queries * sum(layer.out_features * layer.in_dim * (layer.out_features + layer.in_dim)
                             for layer in self.layers)
        return rotation <= back

    def token_scores(self, grads: QueryGradients, sequences: Sequence[TrainingSequence]) -> list[Any]:
        """Per-token scores (queries, positions) of each sequence, computed in this process."""
        worker = Worker(self.model, self.layers, self.settings, self.batch_size)
        started = time.perf_counter()
        out: list[Any] = []
        for chunk in chunked(list(sequences), self.chunk_size):
            out += worker.tokens(chunk, grads)
        self._timed("token scores", started)
        return out
