"""evaluate(): samples -> requests (deduplicated, cached) -> model -> scores -> samples.jsonl -> results.json.

Order of durability: a response is in the cache before it is used; a sample's record is appended (and fsynced)
as soon as all its responses are in; results.json is written last. Re-running into the same directory skips
finished samples and answers every cached request from the cache, so no model call is ever repeated.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import random
import re
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.core.types import (
    Request,
    Response,
    Sample,
    SampleRecord,
    request_key,
    response_from_dict,
    to_dict,
)
from lmaudit.models.base import Model
from lmaudit.runner.aggregate import aggregate
from lmaudit.runner.cache import ResponseCache, default_cache_path
from lmaudit.runner.rundir import MANIFEST, RESULTS, RunDir
from lmaudit.tasks.base import Task

RESULTS_SCHEMA = "lmaudit.results/1"
TARGET_CHUNK_SECONDS = 10.0  # how much model work may be lost to a kill, and how often progress is saved


@dataclass
class EvalResult:
    run_dir: Path
    results: dict[str, Any]
    requests_sent: int  # model calls made by this invocation (after dedup and cache)
    cache_hits: int
    samples_scored: int
    samples_resumed: int


def select_samples(samples: list[Sample], limit: int | None, group_key: str | None) -> list[Sample]:
    """At most `limit` samples, taken round-robin over the first grouping key so every group is represented."""
    if limit is None or limit >= len(samples):
        return samples
    if limit < 0:
        raise ConfigError(f"limit must be positive, got {limit}")
    if not group_key:
        return samples[:limit]
    buckets: dict[Any, list[Sample]] = defaultdict(list)
    for sample in samples:
        buckets[sample.metadata.get(group_key)].append(sample)
    chosen: list[Sample] = []
    depth = 0
    while len(chosen) < limit:
        for bucket in buckets.values():
            if depth < len(bucket) and len(chosen) < limit:
                chosen.append(bucket[depth])
        depth += 1
    return chosen


def default_run_dir(model_name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', model_name)[:60]}"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("lmaudit", "numpy", "torch", "transformers", "openai"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


@dataclass
class _Pending:
    task: Task
    sample: Sample
    requests: list[Request]
    keys: list[str]


class _Evaluation:
    def __init__(self, model: Model, tasks: Sequence[Task], run: RunDir, cache: ResponseCache, *,
                 limit: int | None, seed: int, progress: bool):
        self.model, self.tasks, self.run, self.cache = model, list(tasks), run, cache
        self.limit, self.seed, self.progress = limit, seed, progress
        self.fingerprint = model.fingerprint()
        self.plan: dict[str, list[Sample]] = {}
        self.responses: dict[str, Response] = {}
        self.requests_sent = 0

    def build_plan(self) -> None:
        names = [task.name for task in self.tasks]
        if len(set(names)) != len(names):
            raise ConfigError(f"a task is listed twice: {names}")
        for task in self.tasks:
            samples = select_samples(task.samples(), self.limit, task.group_by[0] if task.group_by else None)
            ids = [s.id for s in samples]
            if len(set(ids)) != len(ids):
                duplicate = next(i for i in ids if ids.count(i) > 1)
                raise DataError(f"task {task.name}: sample id '{duplicate}' occurs twice")
            self.plan[task.name] = samples

    def identity(self) -> dict[str, Any]:
        """What a resumed run must share with the run it continues."""
        return jsonable({"model_fingerprint": self.fingerprint, "limit": self.limit, "seed": self.seed,
                          "tasks": {task.name: task.config() for task in self.tasks}})

    def write_manifest(self, model_spec: str | None, command: list[str] | None, options: dict[str, Any]) -> None:
        identity = self.identity()
        previous = self.run.read_json(MANIFEST)
        if previous is not None and previous.get("identity") != identity:
            old, new = previous.get("identity", {}), identity
            differing = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ConfigError(f"{self.run.path} holds a different run (differs in: {', '.join(differing)}); "
                              f"use a new --output-dir, or the same settings to resume it")
        data_files: dict[str, str] = {}
        for config in identity["tasks"].values():
            data_files.update(config.get("data_files", {}))
        manifest = previous or {
            "created": datetime.now(timezone.utc).isoformat(),
            "command": command if command is not None else sys.argv,
            "model": {"spec": model_spec, "name": getattr(self.model, "name", None), "fingerprint": self.fingerprint},
            "identity": identity,
            "options": jsonable(options),
            "seed": self.seed,
            "versions": package_versions(),
            "dataset_hashes": data_files,
            "invocations": [],
        }
        self.manifest = manifest
        self.run.write_json(MANIFEST, manifest)

    def record_invocation(self, entry: dict[str, Any]) -> None:
        self.manifest["invocations"].append(entry)
        self.run.write_json(MANIFEST, self.manifest)

    def execute(self) -> tuple[int, int, int]:
        finished = {(r.task, r.sample_id) for r in self.run.records()}
        pending: list[_Pending] = []
        requests: dict[str, Request] = {}
        for task in self.tasks:
            for sample in self.plan[task.name]:
                if (task.name, sample.id) in finished:
                    continue
                sample_requests = task.requests(sample)
                keys = [request_key(r) for r in sample_requests]
                requests.update(zip(keys, sample_requests))
                pending.append(_Pending(task, sample, sample_requests, keys))
        resumed = sum(len(samples) for samples in self.plan.values()) - len(pending)

        cached = self.cache.get_many(self.fingerprint, requests)
        self.responses = {key: response_from_dict(raw) for key, raw in cached.items()}
        waiting_on: dict[str, list[int]] = defaultdict(list)
        missing = [0] * len(pending)
        for index, item in enumerate(pending):
            for key in set(item.keys):
                if key not in self.responses:
                    waiting_on[key].append(index)
                    missing[index] += 1
        self._score([i for i, count in enumerate(missing) if count == 0], pending)

        todo = [key for key in requests if key not in self.responses]
        # Sorting by content keeps requests that share a context (or a few-shot prefix) in the same chunk.
        todo.sort(key=lambda k: (requests[k].kind, json.dumps(to_dict(requests[k]), sort_keys=True)))
        with tqdm(total=len(todo), desc="model requests", unit="req", disable=not self.progress,
                  dynamic_ncols=True) as bar:
            for kind in ("loglikelihood", "generate"):
                keys = [k for k in todo if requests[k].kind == kind]
                method = self.model.loglikelihood if kind == "loglikelihood" else self.model.generate
                chunk, start = (64 if kind == "loglikelihood" else 8), 0
                while start < len(keys):
                    batch = keys[start:start + chunk]
                    began = time.perf_counter()
                    self._attach_hook(batch)
                    answers = method([requests[k] for k in batch])  # type: ignore[arg-type]
                    self.requests_sent += len(batch)
                    self.cache.put_many(self.fingerprint, ((k, to_dict(a)) for k, a in zip(batch, answers)))
                    ready = []
                    for key, answer in zip(batch, answers):
                        self.responses[key] = answer
                        for index in waiting_on.pop(key, []):
                            missing[index] -= 1
                            if missing[index] == 0:
                                ready.append(index)
                    self._score(ready, pending)
                    start += len(batch)
                    bar.update(len(batch))
                    per_request = (time.perf_counter() - began) / len(batch)
                    chunk = int(min(4096, max(8, TARGET_CHUNK_SECONDS / max(per_request, 1e-6))))
        self._attach_hook(None)
        return resumed, len(cached), len(pending)

    def _attach_hook(self, batch: list[str] | None) -> None:
        """Backends that answer one by one (HTTP) persist each response the moment it arrives."""
        if not hasattr(self.model, "on_response"):
            return
        if batch is None:
            self.model.on_response = None  # type: ignore[attr-defined]
            return
        fingerprint, cache = self.fingerprint, self.cache

        def persist(index: int, response: Response) -> None:
            cache.put_many(fingerprint, [(batch[index], to_dict(response))])

        self.model.on_response = persist  # type: ignore[attr-defined]

    def _score(self, indices: list[int], pending: list[_Pending]) -> None:
        by_task: dict[str, list[_Pending]] = defaultdict(list)
        for index in indices:
            by_task[pending[index].task.name].append(pending[index])
        records = []
        for items in by_task.values():
            task = items[0].task
            pairs = [(item.sample, [self.responses[k] for k in item.keys]) for item in items]
            if hasattr(task, "score_batch"):
                scores = task.score_batch(pairs)
            else:
                scores = [task.score(sample, responses) for sample, responses in pairs]
            outcomes = getattr(task, "outcomes", {})
            for item, sample_scores in zip(items, scores):
                metadata = dict(item.sample.metadata)
                if item.sample.id in outcomes:
                    metadata["execution"] = outcomes[item.sample.id]
                records.append(SampleRecord(
                    task=task.name, sample_id=item.sample.id, target=jsonable(item.sample.target),
                    metadata=jsonable(metadata),
                    requests=[{"key": k, **to_dict(r)} for k, r in zip(item.keys, item.requests)],
                    responses=[to_dict(self.responses[k]) for k in item.keys],
                    scores={name: float(value) for name, value in sample_scores.items()},
                ))
        self.run.append(records)

    def results(self, model_spec: str | None) -> dict[str, Any]:
        by_key = {(r.task, r.sample_id): r for r in self.run.records()}
        tasks = {}
        for task in self.tasks:
            records = [by_key[(task.name, s.id)] for s in self.plan[task.name] if (task.name, s.id) in by_key]
            tasks[task.name] = {**aggregate(records, task.metrics, task.group_by, seed=self.seed),
                                "metric_names": list(task.metrics), "group_by": list(task.group_by),
                                "complete": len(records) == len(self.plan[task.name])}
        return {"schema": RESULTS_SCHEMA,
                "model": {"spec": model_spec, "fingerprint": self.fingerprint},
                "limit": self.limit, "seed": self.seed, "tasks": tasks}


def evaluate(model: Model, tasks: Sequence[Task], output_dir: str | Path | None = None, *,
             limit: int | None = None, seed: int = 0, cache_path: str | Path | None = None,
             shared_cache: bool = True, progress: bool = True, model_spec: str | None = None,
             command: list[str] | None = None, options: dict[str, Any] | None = None) -> EvalResult:
    """Evaluate `model` on `tasks`, writing a resumable run directory.

    The response cache is shared across runs (`~/.cache/lmaudit/responses.sqlite`, or `cache_path`) unless
    `shared_cache` is False, in which case the run keeps its own cache inside its directory.
    """
    run = RunDir(output_dir or default_run_dir(getattr(model, "name", None) or model_spec or "model"))
    random.seed(seed)
    np.random.seed(seed % (2**32))
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)
    cache = ResponseCache(cache_path or (default_cache_path() if shared_cache else run.path / "cache.sqlite"))
    evaluation = _Evaluation(model, tasks, run, cache, limit=limit, seed=seed, progress=progress)
    began = datetime.now(timezone.utc).isoformat()
    started = time.perf_counter()
    try:
        evaluation.build_plan()
        evaluation.write_manifest(model_spec, command, options or {})
        resumed, hits, scored = evaluation.execute()
        results = evaluation.results(model_spec)
        run.write_json(RESULTS, results)
        evaluation.record_invocation({"started": began, "seconds": round(time.perf_counter() - started, 3),
                                      "requests_sent": evaluation.requests_sent, "cache_hits": hits,
                                      "samples_scored": scored, "samples_resumed": resumed,
                                      "usage": jsonable(getattr(model, "usage", None))})
    finally:
        cache.close()
    return EvalResult(run.path, results, evaluation.requests_sent, hits, scored, resumed)
