"""Every number of a report is recomputed from samples.jsonl with the code that wrote results.json.

One recomputer per run kind, each calling the capability's own aggregation:
- eval (and the consistency and calibration runs, which are evals): the run's tasks are rebuilt from the
  manifest and `runner.evaluate.eval_results` runs again on the records, in the plan's order, so even the
  bootstrap CIs come out bit for bit. When a task cannot be rebuilt (a TOML file moved, a variant task) the
  records are aggregated by `runner.aggregate` in file order: values, stderr and n still match, a CI may not.
- redteam: `safety.metrics.attack_summary` over each attack's attempt records (ASR per behaviour).
- any other kind: each results.json row whose metric is a per-record score is recomputed with
  `runner.summarize_records` over that task's (and group's) records; other rows are shown as written.

Then each recomputed row is compared with results.json; the report shows which rows match.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lmaudit.core.errors import LmauditError
from lmaudit.core.output import strict
from lmaudit.core.results import MetricRow, aggregate_rows, read_envelope
from lmaudit.core.types import SampleRecord
from lmaudit.report.runs import Run
from lmaudit.runner import aggregate, plan_samples, summarize_records


@dataclass
class Recomputed:
    rows: list[MetricRow]
    units: dict[str, list[SampleRecord]]  # per task: the records its metrics are means over, in aggregation order
    metrics: dict[str, list[str]]  # per task: metric names, primary first
    group_by: dict[str, list[str]]
    method: str
    notes: list[str] = field(default_factory=list)
    # per task: the scores of the browsed records to call correct/incorrect by, where they are not the units'
    record_metrics: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Checked:
    """A row to show: its numbers, where they came from, and whether they equal results.json."""

    row: MetricRow
    status: str  # "match", "differs", "as written" (no recomputation for this row)
    written: MetricRow | None = None


def row_key(row: MetricRow) -> tuple[str | None, str | None, str]:
    return row.task, row.group, row.metric


def normalized(row: MetricRow) -> dict[str, Any]:
    """The row as results.json stores it (strict JSON: NaN -> null), so equality is exact."""
    return json.loads(json.dumps(strict(row.to_dict())))


def by_task(records: Sequence[SampleRecord]) -> dict[str, list[SampleRecord]]:
    out: dict[str, list[SampleRecord]] = {}
    for record in records:
        out.setdefault(record.task, []).append(record)
    return out


# -- eval -----------------------------------------------------------------------------------------------

def _rebuild_plan(run: Run, shared: dict[str, Any]) -> tuple[list[Any], dict[str, list[Any]]] | None:
    """The run's tasks and sample plan, built again from its manifest (once for runs with the same task
    settings); None when a task cannot be rebuilt as it was."""
    identity = run.manifest.get("identity") or {}
    key = json.dumps([identity.get("tasks"), (run.manifest.get("options") or {}).get("task_args"),
                      identity.get("limit"), list(run.results.get("tasks", {}))], sort_keys=True, default=str)
    if key not in shared:
        tasks = _rebuild_tasks(run)
        plan = None
        if tasks is not None:
            try:
                plan = plan_samples(tasks, identity.get("limit", run.results.get("limit")))
            except (LmauditError, OSError):
                plan = None
        shared[key] = (tasks, plan) if plan is not None else None
    return shared[key]


def _rebuild_tasks(run: Run) -> list[Any] | None:
    """The run's tasks, built again from its manifest; None when any of them cannot be (fall back)."""
    from lmaudit.core.options import accepted
    from lmaudit.runner.session import jsonable
    from lmaudit.tasks import get_task, task_entries

    identity = run.manifest.get("identity") or {}
    configs = identity.get("tasks") or {}
    options = (run.manifest.get("options") or {}).get("task_args") or {}
    entries = task_entries()
    tasks = []
    for name in run.results.get("tasks", {}):
        if name not in entries or name not in configs:
            return None
        try:
            with warnings.catch_warnings():  # a data-source warning concerns the original run, not this rebuild
                warnings.simplefilter("ignore")
                task = get_task(name, **accepted(entries[name].factory, options))
        except (LmauditError, OSError, TypeError, ValueError):
            return None
        if jsonable(task.config()) != configs[name]:
            return None
        tasks.append(task)
    return tasks


def recompute_eval(run: Run, shared: dict[str, Any]) -> Recomputed:
    from lmaudit.runner.evaluate import eval_results

    info = run.results.get("tasks", {})
    metrics = {name: list(t.get("metric_names", [])) for name, t in info.items()}
    group_by = {name: list(t.get("group_by", [])) for name, t in info.items()}
    rebuilt = _rebuild_plan(run, shared)
    if rebuilt is not None:
        tasks, plan = rebuilt
        known = {(name, s.id) for name, samples in plan.items() for s in samples}
        if all((r.task, r.sample_id) in known for r in run.records):
            model = run.results.get("model") or {}
            again = eval_results(tasks, plan, run.records, model_spec=model.get("spec"),
                                 fingerprint=model.get("fingerprint", ""), limit=run.results.get("limit"),
                                 seed=run.seed)
            by_key = {(r.task, r.sample_id): r for r in run.records}
            units = {name: [by_key[(name, s.id)] for s in samples if (name, s.id) in by_key]
                     for name, samples in plan.items()}
            return Recomputed(read_envelope(again, "recomputed results")[1], units, metrics, group_by,
                              "eval_results on the rebuilt tasks and plan")
    grouped = by_task(run.records)
    rows: list[MetricRow] = []
    units = {}
    for name in info:
        units[name] = grouped.get(name, [])
        rows += aggregate_rows(aggregate(units[name], metrics[name], group_by[name], seed=run.seed), task=name)
    return Recomputed(rows, units, metrics, group_by, "aggregate over the records in file order",
                      ["the tasks could not be rebuilt from the manifest (data moved, or not registered tasks): "
                       "bootstrap CIs are recomputed in samples.jsonl order and may differ from results.json"])


# -- redteam --------------------------------------------------------------------------------------------

def recompute_redteam(run: Run, shared: dict[str, Any]) -> Recomputed:
    # attack_summary and behaviour_records are the functions redteam's results.json comes from
    from lmaudit.safety import attack_summary, behaviour_records

    judges = list(run.results.get("judges", []))
    grouped = by_task(run.records)
    rows: list[MetricRow] = []
    units, metrics, group_by = {}, {}, {}
    attacks = run.results.get("attacks", {})
    # the order the run was given its attacks in (results.json's "attacks" object is stored with sorted keys)
    order = [a.get("name") for a in (run.manifest.get("identity") or {}).get("attacks", []) if isinstance(a, dict)]
    for attack in sorted(attacks, key=lambda name: order.index(name) if name in order else len(order)):
        info = attacks[attack]
        mine = grouped.get(info.get("task"), [])
        if not mine or not judges:
            continue
        rows += aggregate_rows(attack_summary(mine, judges, seed=run.seed), task=attack)
        units[info["task"]] = behaviour_records(mine, judges, judges[0])
        metrics[info["task"]] = [f"asr_{j}" for j in judges] + [f"asr_any_{j}" for j in judges] + ["attempts_used"]
        group_by[info["task"]] = ["category"]
    record_metrics = {task: [f"jailbroken_{j}" for j in judges] for task in units}
    return Recomputed(rows, units, metrics, group_by, "safety attack_summary per attack (ASR per behaviour)",
                      record_metrics=record_metrics)


# -- anything else --------------------------------------------------------------------------------------

def recompute_generic(run: Run, shared: dict[str, Any]) -> Recomputed:
    grouped = by_task(run.records)
    rows = []
    for written in run.rows:
        members = grouped.get(written.task, []) if written.task is not None else run.records
        if written.group:
            key, _, value = written.group.partition("=")
            members = [r for r in members if key in r.metadata and str(r.metadata[key]) == value]
        if not any(written.metric in r.scores for r in members):
            continue
        summary = summarize_records(members, [written.metric], seed=run.seed)
        rows += [MetricRow(written.metric, s.get("value"), s.get("stderr"), tuple(s["ci95"]) if s.get("ci95") else None,
                           s.get("n"), written.task, written.group) for s in summary.values()]
    metrics = {task: sorted({m for r in members for m in r.scores}) for task, members in grouped.items()}
    group_by = {task: sorted({k for r in members for k in r.metadata if isinstance(r.metadata[k], (str, int, bool))})
                for task, members in grouped.items()}
    return Recomputed(rows, grouped, metrics, group_by, "summarize_records per results.json row")


RECOMPUTERS: dict[str, Callable[[Run, dict[str, Any]], Recomputed]] = {"eval": recompute_eval,
                                                                       "redteam": recompute_redteam}


def recompute(run: Run, shared: dict[str, Any] | None = None) -> Recomputed:
    """`shared`: state kept across the runs of one report (tasks rebuilt once for runs that share them)."""
    return RECOMPUTERS.get(run.kind, recompute_generic)(run, {} if shared is None else shared)


def check(run: Run, recomputed: Recomputed) -> list[Checked]:
    """results.json's rows, each replaced by its recomputation and marked match / differs / as written."""
    mine = {row_key(r): r for r in recomputed.rows}
    out = []
    for written in run.rows:
        again = mine.pop(row_key(written), None)
        if again is None:
            out.append(Checked(written, "as written", written))
        else:
            out.append(Checked(again, "match" if normalized(again) == normalized(written) else "differs", written))
    out += [Checked(row, "not in results.json") for row in mine.values()]
    return out
