"""evaluate(): samples -> requests (deduplicated, cached) -> model -> scores -> samples.jsonl -> results.json.

Every model call goes through a RunSession (runner/session.py), which keeps the durability order: a response is
in the cache before it is used; a sample's record is appended (and fsynced) as soon as all its responses are in;
results.json is written last. Re-running into the same directory skips finished samples and answers every
cached request from the cache, so no model call is ever repeated.
"""

from __future__ import annotations

import random
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.core.redact import redact
from lmaudit.core.results import RESULTS_SCHEMA, MetricRow, aggregate_rows
from lmaudit.core.types import Request, Response, Sample, SampleRecord, request_key, to_dict
from lmaudit.models.base import Model
from lmaudit.runner.aggregate import aggregate
from lmaudit.runner.session import ModelRole, RunSession, jsonable
from lmaudit.tasks.base import BatchScoringTask, Scored, Task

TARGET = "target"


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
    if limit <= 0:
        raise ConfigError(f"limit must be at least 1, got {limit}")
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


def plan_samples(tasks: Sequence[Task], limit: int | None) -> dict[str, list[Sample]]:
    names = [task.name for task in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"a task is listed twice: {names}")
    plan = {}
    for task in tasks:
        samples = select_samples(task.samples(), limit, task.group_by[0] if task.group_by else None)
        ids = [s.id for s in samples]
        if len(set(ids)) != len(ids):
            duplicate = next(i for i in ids if ids.count(i) > 1)
            raise DataError(f"task {task.name}: sample id '{duplicate}' occurs twice")
        if not samples:
            raise DataError(f"task {task.name} has no samples")
        plan[task.name] = samples
    return plan


def make_record(task: Task, sample: Sample, requests: Sequence[Request], keys: Sequence[str],
                responses: Sequence[Response], scored: Scored) -> SampleRecord:
    return SampleRecord(
        task=task.name, sample_id=sample.id, target=jsonable(sample.target), metadata=jsonable(sample.metadata),
        requests=[{"key": k, **to_dict(r)} for k, r in zip(keys, requests)],
        responses=[to_dict(r) for r in responses],
        scores={name: float(value) for name, value in scored.scores.items()},
        execution=jsonable(scored.execution) if scored.execution is not None else None,
        source_id=sample.source_id)


def score_samples(task: Task, pairs: list[tuple[Sample, list[Response]]]) -> list[Scored]:
    if isinstance(task, BatchScoringTask):
        return list(task.score_batch(pairs))
    return [Scored(task.score(sample, responses)) for sample, responses in pairs]


@dataclass
class _Pending:
    task: Task
    sample: Sample
    requests: list[Request]
    keys: list[str]


def _execute(session: RunSession, tasks: Sequence[Task], plan: dict[str, list[Sample]]) -> tuple[int, int]:
    """Send what is not answered yet and append each sample's record as soon as its responses are in."""
    finished = {(r.task, r.sample_id) for r in session.records()}
    pending: list[_Pending] = []
    for task in tasks:
        for sample in plan[task.name]:
            if (task.name, sample.id) not in finished:
                requests = task.requests(sample)
                pending.append(_Pending(task, sample, requests, [request_key(r) for r in requests]))
    resumed = sum(len(samples) for samples in plan.values()) - len(pending)
    waiting_on: dict[str, list[int]] = defaultdict(list)
    missing = [0] * len(pending)
    for index, item in enumerate(pending):
        for key in set(item.keys):
            waiting_on[key].append(index)
            missing[index] += 1
    responses: dict[str, Response] = {}
    ready: list[int] = []

    def answered(key: str, response: Response) -> None:
        responses[key] = response
        for index in waiting_on.pop(key, []):
            missing[index] -= 1
            if missing[index] == 0:
                ready.append(index)

    def flush() -> None:
        by_task: dict[str, list[_Pending]] = defaultdict(list)
        for index in ready:
            by_task[pending[index].task.name].append(pending[index])
        ready.clear()
        records = []
        for items in by_task.values():
            task = items[0].task
            answers = [[responses[k] for k in item.keys] for item in items]
            scored = score_samples(task, [(item.sample, a) for item, a in zip(items, answers)])
            records += [make_record(task, item.sample, item.requests, item.keys, a, s)
                        for item, a, s in zip(items, answers, scored)]
        session.append(records)

    unique = {key: request for item in pending for key, request in zip(item.keys, item.requests)}
    session.call(TARGET, list(unique.values()), label="model requests", on_answer=answered,
                 after_chunk=flush)
    return resumed, len(pending)


def eval_results(tasks: Sequence[Task], plan: dict[str, list[Sample]], records: Sequence[SampleRecord], *,
                 model_spec: str | None, fingerprint: str, limit: int | None, seed: int) -> dict[str, Any]:
    """results.json of an eval run: a pure function of the records, so a resumed run writes the same bytes."""
    by_key = {(r.task, r.sample_id): r for r in records}
    tasks_out, rows = {}, []
    for task in tasks:
        mine = [by_key[(task.name, s.id)] for s in plan[task.name] if (task.name, s.id) in by_key]
        summary = aggregate(mine, task.metrics, task.group_by, seed=seed)
        tasks_out[task.name] = {**summary, "metric_names": list(task.metrics), "group_by": list(task.group_by),
                                "complete": len(mine) == len(plan[task.name])}
        rows += aggregate_rows(summary, task=task.name)
    return {"schema": RESULTS_SCHEMA, "kind": "eval", "metrics": [r.to_dict() for r in rows],
            "model": {"spec": redact(model_spec) if model_spec else None, "fingerprint": fingerprint},
            "limit": limit, "seed": seed,
            "tasks": tasks_out}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def evaluate(model: Model, tasks: Sequence[Task], output_dir: str | Path | None = None, *,
             limit: int | None = None, seed: int = 0, cache_path: str | Path | None = None,
             shared_cache: bool = True, progress: bool = True, model_spec: str | None = None,
             command: list[str] | None = None, options: dict[str, Any] | None = None) -> EvalResult:
    """Evaluate `model` on `tasks`, writing a resumable run directory (see RunSession for the cache options)."""
    if limit is not None and limit <= 0:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    seed_everything(seed)
    configs = {task.name: task.config() for task in tasks}
    data_files: dict[str, str] = {}
    for config in jsonable(configs).values():
        data_files.update(config.get("data_files", {}))
    session = RunSession.open(output_dir, kind="eval", identity={"limit": limit, "seed": seed, "tasks": configs},
                              roles=[ModelRole(TARGET, model, model_spec)], command=command, options=options,
                              dataset_hashes=data_files, cache_path=cache_path, shared_cache=shared_cache,
                              progress=progress, name=model.name or model_spec)
    with session:
        plan = plan_samples(tasks, limit)
        resumed, scored = _execute(session, tasks, plan)
        results = eval_results(tasks, plan, session.records(), model_spec=model_spec,
                               fingerprint=session.fingerprints[TARGET], limit=limit, seed=seed)
        results = session.finish(results)
        session.note(samples_scored=scored, samples_resumed=resumed)
    return EvalResult(session.run.path, results, session.sent[TARGET], session.hits[TARGET], scored, resumed)


__all__ = ["EvalResult", "MetricRow", "evaluate", "eval_results", "make_record", "plan_samples", "score_samples",
           "select_samples"]
