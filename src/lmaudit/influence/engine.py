"""The passes over training sequences: fixed chunks, run in this process or on Ray actors, reduced in order.

The sequences are cut into chunks of `chunk_size` (the unit of sharding and of checkpointing). A chunk's result
(a stage's sums, or its scores) depends on the chunk alone: its batches are formed inside it, and the true
Fisher's labels are seeded per sequence. Results are folded in chunk order whichever worker finished first, so a
Ray run equals a local run, and a resumed run equals an uninterrupted one.

Passes are fused where the data allows: when the gradients of a whole stage fit the cache budget, the local
executor keeps them from the first pass, and the eigenvalue refit and the scores of the same sequences replay
them instead of running the model again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lmaudit.core.errors import ConfigError
from lmaudit.influence.data import TrainingSequence
from lmaudit.influence.factors import FactorSettings, rotate_batch
from lmaudit.influence.gradients import BatchGradients, batch_gradients, length_batches
from lmaudit.influence.modules import TrackedLayer
from lmaudit.influence.scoring import QueryGradients, layer_scores, token_scores
from lmaudit.influence.sums import Sums, covariance_sums, diagonal_sums, lambda_sums

EXECUTORS = ("local", "ray")
STAGES = ("covariance", "diagonal", "lambda", "scores")


def sequence_seed(seed: int, sequence_id: str) -> int:
    """The true Fisher's label seed for one sequence: a function of the run seed and the sequence alone."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{sequence_id}".encode()).digest()[:8], "big") >> 1


def chunked(sequences: Sequence[TrainingSequence], chunk_size: int) -> list[list[TrainingSequence]]:
    if chunk_size < 1:
        raise ConfigError(f"chunk size must be at least 1, got {chunk_size}")
    return [list(sequences[i:i + chunk_size]) for i in range(0, len(sequences), chunk_size)]


def plan_digest(chunks: Sequence[Sequence[TrainingSequence]]) -> str:
    """Identity of a chunk plan: which sequences, in which chunks, with which tokens."""
    digest = hashlib.sha256()
    for index, chunk in enumerate(chunks):
        for sequence in chunk:
            digest.update(f"{index}\0{sequence.sequence_id}\0{','.join(map(str, sequence.tokens))}\n".encode())
    return digest.hexdigest()[:16]


@dataclass
class Worker:
    """Runs a stage on one chunk: the model, its tracked layers and the fitting settings."""

    model: Any
    layers: list[TrackedLayer]
    settings: FactorSettings
    batch_size: int

    def gradients(self, chunk: Sequence[TrainingSequence], *, fit: bool, data: bool) -> list[tuple[list[int],
                                                                                              BatchGradients]]:
        """The chunk's batches (sequences of like lengths, so padding stays small) with their positions."""
        out = []
        for positions in length_batches([len(s.tokens) for s in chunk], self.batch_size):
            rows = [chunk[i].tokens for i in positions]
            seeds = [sequence_seed(self.settings.seed, chunk[i].sequence_id) for i in positions]
            out.append((positions, batch_gradients(self.model, self.layers, rows,
                                                   fit=self.settings.fisher if fit else None, data=data,
                                                   seeds=seeds)))
        return out

    @staticmethod
    def prepare(stage: str, batches: list[tuple[list[int], BatchGradients]],
                payload: Any) -> list[tuple[list[int], BatchGradients]]:
        """The batches as the stage reads them: in the Kronecker eigenbasis for the eigenvalue refit (payload: the
        bases), and for scores when the query gradients are kept there."""
        bases = payload if stage == "lambda" else getattr(payload, "bases", None) if stage == "scores" else None
        if bases is None:
            return batches
        return [(positions, rotate_batch(batch, bases)) for positions, batch in batches]

    def run(self, stage: str, chunk: Sequence[TrainingSequence], payload: Any,
            batches: list[tuple[list[int], BatchGradients]] | None = None) -> Any:
        if batches is None:
            batches = self.gradients(chunk, fit=stage != "scores", data=stage == "scores")
        batches = self.prepare(stage, batches, payload)
        if stage == "scores":
            return self._scores(len(chunk), batches, payload)
        total = Sums()
        for _, batch in batches:
            if stage == "covariance":
                total.add(covariance_sums(batch, self.layers))
            elif stage == "diagonal":
                total.add(diagonal_sums(batch, self.layers))
            elif stage == "lambda":
                total.add(lambda_sums(batch, self.layers))
            else:
                raise ConfigError(f"unknown stage {stage!r}")
        return total

    def _scores(self, size: int, batches: list[tuple[list[int], BatchGradients]], queries: QueryGradients) -> Any:
        import numpy as np

        out = np.zeros((size, queries.count, len(self.layers)))
        for positions, batch in batches:
            out[positions] = layer_scores(queries, batch, self.layers).cpu().numpy()
        return out

    def tokens(self, chunk: Sequence[TrainingSequence], queries: QueryGradients) -> list[Any]:
        """Per-token scores of every sequence of the chunk: one (queries, positions) array each, in chunk order."""
        result: list[Any] = [None] * len(chunk)
        for positions, batch in self.gradients(chunk, fit=False, data=True):
            values = token_scores(queries, batch, self.layers).cpu().numpy()
            for row, position in enumerate(positions):
                result[position] = values[row, :, :batch.lengths[row]]
        return result


class LocalExecutor:
    """Chunks in order in this process; keeps batch gradients for replay while they fit `cache_bytes`."""

    name = "local"

    def __init__(self, worker: Worker, cache_bytes: int = 0):
        self.worker, self.cache_bytes = worker, cache_bytes
        self._cache: dict[tuple[str, ...], list[tuple[list[int], BatchGradients]]] = {}
        self._cached_bytes = 0
        self.model_passes = 0

    def map(self, stage: str, chunks: Sequence[Sequence[TrainingSequence]], todo: Sequence[int],
            payload: Any, *, keep_data: bool = False) -> Iterator[tuple[int, Any]]:
        for index in todo:
            chunk = chunks[index]
            key = tuple(s.sequence_id for s in chunk)
            batches = self._cache.get(key)
            if batches is None or not _usable(stage, batches[0][1], payload):
                self.model_passes += 1
                fit = stage != "scores"
                batches = self.worker.gradients(chunk, fit=fit, data=stage == "scores" or keep_data)
            batches = self.worker.prepare(stage, batches, payload)
            self._remember(key, batches)  # rotated batches replace the originals: later stages read them rotated
            yield index, self.worker.run(stage, chunk, payload, batches)

    def rotated(self, chunks: Sequence[Sequence[TrainingSequence]]) -> bool:
        """Whether every chunk's gradients are kept, with data gradients, already in the eigenbasis."""
        for chunk in chunks:
            batches = self._cache.get(tuple(s.sequence_id for s in chunk))
            if batches is None or batches[0][1].basis != "eigen" or batches[0][1].data_grads is None:
                return False
        return True

    def _remember(self, key: tuple[str, ...], batches: list[tuple[list[int], BatchGradients]]) -> None:
        size = sum(_bytes(batch) for _, batch in batches)
        previous = sum(_bytes(batch) for _, batch in self._cache.get(key, []))
        if self._cached_bytes - previous + size <= self.cache_bytes:
            self._cache[key] = batches
            self._cached_bytes += size - previous
        elif key in self._cache:
            del self._cache[key]
            self._cached_bytes -= previous

    def close(self) -> None:
        self._cache.clear()


def _usable(stage: str, batch: BatchGradients, payload: Any) -> bool:
    """Whether kept gradients can serve a stage: the gradients it reads, in a basis it can reach."""
    if stage == "scores":
        return batch.data_grads is not None and (batch.basis == "original" or getattr(payload, "bases", None)
                                                 is not None)
    return batch.fit_grads is not None and (batch.basis == "original" or stage == "lambda")


def _bytes(batch: BatchGradients) -> int:
    """Memory the batch holds, each storage counted once (layers share inputs; one set of gradients may serve
    both the fit and the data)."""
    storages = {}
    for group in (batch.inputs, batch.fit_grads or {}, batch.data_grads or {}):
        for tensor in group.values():
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


class _RayWorker:
    """A Ray actor: loads the model once from its spec, keeps the current payload, runs chunks."""

    def __init__(self, spec: str, options: dict[str, Any], layers: list[TrackedLayer], settings: FactorSettings,
                 batch_size: int, threads: int):
        import torch

        from lmaudit.models import load_model
        from lmaudit.models.base import require_white_box

        torch.set_num_threads(threads)
        model = require_white_box(load_model(spec, **options), "influence")
        self.worker = Worker(model, layers, settings, batch_size)
        self.payload: Any = None

    def fingerprint(self) -> str:
        return self.worker.model.fingerprint()

    def set_payload(self, payload: Any) -> None:
        self.payload = payload

    def run(self, stage: str, index: int, chunk: list[TrainingSequence]) -> tuple[int, Any]:
        return index, self.worker.run(stage, chunk, self.payload)


class RayExecutor:
    """Chunks shared out over Ray actors (one model each); results handed back in chunk order."""

    name = "ray"

    def __init__(self, spec: str, options: dict[str, Any], layers: list[TrackedLayer], settings: FactorSettings,
                 batch_size: int, workers: int, expected_fingerprint: str, threads: int = 1):
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is in the test profile
            raise ConfigError("--executor ray needs Ray: pip install ray") from exc
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False)  # RAY_ADDRESS's cluster, or a local one
        self.ray = ray
        actor = ray.remote(num_cpus=threads)(_RayWorker)
        self.actors = [actor.remote(spec, options, layers, settings, batch_size, threads) for _ in range(workers)]
        for fingerprint in ray.get([a.fingerprint.remote() for a in self.actors]):
            if fingerprint != expected_fingerprint:
                raise ConfigError(f"a Ray worker loaded {spec} with another fingerprint ({fingerprint}, here "
                                  f"{expected_fingerprint}): every worker must see the same model files")
        self.model_passes = 0

    def map(self, stage: str, chunks: Sequence[Sequence[TrainingSequence]], todo: Sequence[int],
            payload: Any, *, keep_data: bool = False) -> Iterator[tuple[int, Any]]:
        ray = self.ray
        shared = ray.put(payload)
        ray.get([a.set_payload.remote(shared) for a in self.actors])
        queue = list(todo)
        running: dict[Any, Any] = {}
        idle = list(self.actors)
        finished: dict[int, Any] = {}
        for index in todo:  # yields strictly in order; results that come early wait in `finished`
            while index not in finished:
                while idle and queue:
                    actor = idle.pop()
                    next_index = queue.pop(0)
                    running[actor.run.remote(stage, next_index, list(chunks[next_index]))] = actor
                    self.model_passes += 1
                ready, _ = ray.wait(list(running), num_returns=1)
                done_index, result = ray.get(ready[0])
                idle.append(running.pop(ready[0]))
                finished[done_index] = result
            yield index, finished.pop(index)

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)


def run_stage(executor: Any, stage: str, chunks: Sequence[Sequence[TrainingSequence]], payload: Any, *,
              checkpoint: Path, identity: dict[str, Any], checkpoint_seconds: float = 30.0, progress: bool = False,
              keep_data: bool = False, on_checkpoint: Callable[[int], None] | None = None) -> Sums:
    """A fitting stage's sums over all chunks, resumed from and saved to `checkpoint` (sums and next chunk)."""
    done, total = 0, Sums()
    if checkpoint.exists():
        saved, meta = Sums.load(checkpoint)
        if meta.get("identity") == identity:
            done, total = int(meta["next_chunk"]), saved
    last = time.monotonic()
    with tqdm(total=len(chunks), initial=done, desc=f"fit: {stage}", unit="chunk", disable=not progress) as bar:
        for index, sums in executor.map(stage, chunks, range(done, len(chunks)), payload, keep_data=keep_data):
            total.add(sums)
            bar.update(1)
            if time.monotonic() - last >= checkpoint_seconds or index == len(chunks) - 1:
                total.save(checkpoint, identity=identity, next_chunk=index + 1)
                last = time.monotonic()
                if on_checkpoint is not None:
                    on_checkpoint(index + 1)
    return total


def run_scores(executor: Any, chunks: Sequence[Sequence[TrainingSequence]], queries: QueryGradients, *,
               parts: Path, identity: dict[str, Any], progress: bool = False,
               on_part: Callable[[int], None] | None = None) -> Any:
    """Scores (sequences, queries, layers) of every chunk; each chunk's part is saved as it finishes and
    skipped when the run resumes. Parts of another computation (other `identity`: queries, factors, chunk
    plan) are removed first."""
    import json

    import numpy as np

    from lmaudit.core.output import strict, write_json_atomic

    parts.mkdir(parents=True, exist_ok=True)
    marker = parts / "identity.json"
    identity = json.loads(json.dumps(strict(identity), sort_keys=True))
    if not marker.exists() or json.loads(marker.read_text(encoding="utf-8")) != identity:
        for stale in parts.glob("part-*.npy"):
            stale.unlink()
        write_json_atomic(marker, identity)
    path = [parts / f"part-{index:06d}.npy" for index in range(len(chunks))]
    todo = [index for index in range(len(chunks)) if not path[index].exists()]
    results: dict[int, Any] = {}
    with tqdm(total=len(chunks), initial=len(chunks) - len(todo), desc="scores", unit="chunk",
              disable=not progress) as bar:
        for index, values in executor.map("scores", chunks, todo, queries):
            tmp = path[index].with_name(f".{path[index].name}.tmp.npy")
            np.save(tmp, values)
            tmp.replace(path[index])
            results[index] = values
            bar.update(1)
            if on_part is not None:
                on_part(index)
    pieces = [results[index] if index in results else np.load(path[index]) for index in range(len(chunks))]
    return np.concatenate(pieces, axis=0) if pieces else np.zeros((0, queries.count, 0))
