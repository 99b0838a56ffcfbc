"""Evaluate a task's MCQ variants through lmaudit.runner.evaluate, then write the robustness tables and plots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmaudit.core.output import MAX_BARS, bar_chart, write_json_atomic, write_jsonl
from lmaudit.models.base import Model
from lmaudit.robustness.analysis import RobustnessReport, RobustnessSlice, robustness_report, slice_to_dict
from lmaudit.robustness.tasks import DEFAULT_PERMUTATIONS, variant_tasks
from lmaudit.runner import RunDir, evaluate, select_samples
from lmaudit.tasks.base import Task

DEFAULT_VARIANTS = ("rotate", "permute", "relabel", "truefalse", "drop", "nota")


@dataclass(frozen=True)
class ConsistencyRun:
    run_dir: Path
    report: RobustnessReport
    requests_sent: int  # model calls this invocation made (after dedup, cache and resume)
    cache_hits: int
    files: tuple[Path, ...]


def _slices(report: RobustnessReport) -> list[tuple[str | None, str | None, RobustnessSlice]]:
    rows: list[tuple[str | None, str | None, RobustnessSlice]] = [(None, None, report.overall)]
    rows += [(key, name, part) for key, values in report.groups.items() for name, part in values.items()]
    return rows


def write_robustness(report: RobustnessReport, directory: str | Path, title: str) -> list[Path]:
    """robustness.json, one JSONL table per metric family (with every group), per-item outcomes and PNG plots."""

    directory = Path(directory)
    files = [directory / "robustness.json"]
    write_json_atomic(files[0], report.to_dict())
    tables: dict[str, list[dict[str, Any]]] = {"variants": [], "families": [], "truefalse": []}
    for key, name, part in _slices(report):
        flat = slice_to_dict(part)
        where = {"group_key": key, "group": name, "n_items": part.n_items}
        tables["variants"] += [{**where, **row} for row in flat["variants"]]
        tables["families"] += [{**where, **row} for row in flat["families"]]
        if flat["truefalse"]:
            tables["truefalse"].append({**where, **flat["truefalse"]})
    for table, rows in tables.items():
        files.append(write_jsonl(directory / f"robustness_{table}.jsonl", rows))
    files.append(write_jsonl(directory / "robustness_items.jsonl", [item.to_dict() for item in report.items]))

    overall = report.overall
    files.append(bar_chart({"accuracy": [(r.variant, r.accuracy) for r in overall.variants]},
                           directory / "robustness_variants.png", f"{title}: accuracy per variant", "accuracy"))
    if overall.families:
        series = {metric: [(r.family, getattr(r, metric)) for r in overall.families]
                  for metric in ("accuracy", "consistency", "consistent_accuracy", "revas_rate")}
        files.append(bar_chart(series, directory / "robustness_families.png",
                               f"{title}: consistency per variant family", "share of items"))
    widest = overall.families[-1].family if overall.families else None  # FAMILIES lists the widest last
    for key, values in report.groups.items():
        if not 1 < len(values) <= MAX_BARS:
            continue
        series = {"original accuracy": [(name, row.accuracy) for name, part in values.items()
                                        for row in part.variants if row.variant == "original"]}
        for metric in ("consistency", "consistent_accuracy"):
            series[f"{metric.replace('_', ' ')} ({widest})"] = [
                (name, getattr(row, metric)) for name, part in values.items()
                for row in part.families if row.family == widest]
        files.append(bar_chart({label: rows for label, rows in series.items() if rows},
                               directory / f"robustness_by_{key}.png", f"{title}: by {key}", "share of items"))
    return files


def run_consistency(model: Model, task: Task, output_dir: str | Path | None = None, *,
                    variants: Sequence[str] = DEFAULT_VARIANTS, permutations: int = DEFAULT_PERMUTATIONS,
                    limit: int | None = None, seed: int = 0, group_by: Sequence[str] | None = None,
                    cache_path: str | Path | None = None, progress: bool = True,
                    model_spec: str | None = None) -> ConsistencyRun:
    """Variants of the first `limit` items (chosen exactly as `lmaudit eval --limit` chooses them) as tasks."""
    sources = select_samples(task.samples(), limit, task.group_by[0] if task.group_by else None)
    tasks = variant_tasks(task, sources, list(variants), permutations=permutations, seed=seed)
    result = evaluate(model, tasks, output_dir, seed=seed, cache_path=cache_path, progress=progress,
                      model_spec=model_spec, options={"analysis": "consistency", "variants": list(variants),
                                                      "permutations": permutations, "limit": limit})
    names = {t.name for t in tasks}
    records = [r for r in RunDir(result.run_dir).records() if r.task in names]
    keys = list(task.group_by) if group_by is None else list(group_by)
    report = robustness_report(records, keys, seed=seed)
    title = f"{model_spec or model.name} on {task.name}"
    files = write_robustness(report, result.run_dir, title)
    return ConsistencyRun(result.run_dir, report, result.requests_sent, result.cache_hits, tuple(files))
