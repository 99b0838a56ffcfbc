"""The results envelope every run directory's results.json shares, so that one reader prints any of them.

{"schema": "lmaudit.results/2", "kind": "<eval|redteam|tokens|...>", "metrics": [MetricRow, ...], ...details}

`metrics` is a flat list of rows (metric, value, and where known stderr, 95% CI, n, task and group); each
capability keeps its own details beside it under its own keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from lmaudit.core.errors import DataError

RESULTS_SCHEMA = "lmaudit.results/2"


@dataclass(frozen=True)
class MetricRow:
    metric: str
    value: float | None
    stderr: float | None = None
    ci95: tuple[float | None, float | None] | None = None
    n: int | None = None
    task: str | None = None
    group: str | None = None  # "key=value" for a breakdown, None for the whole

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["ci95"] = list(self.ci95) if self.ci95 is not None else None
        return raw


def summary_rows(summaries: dict[str, dict[str, Any]], *, task: str | None = None,
                 group: str | None = None) -> list[MetricRow]:
    """Rows from {metric: {value, stderr, ci95, n}} as `core.stats.summarize` writes them."""
    return [MetricRow(metric, s.get("value"), s.get("stderr"), tuple(s["ci95"]) if s.get("ci95") else None,
                      s.get("n"), task, group) for metric, s in summaries.items()]


def aggregate_rows(summary: dict[str, Any], *, task: str | None = None) -> list[MetricRow]:
    """Rows of `runner.aggregate()`'s output: the overall metrics, then one row per group and metric."""
    rows = summary_rows(summary["metrics"], task=task)
    for key, groups in summary.get("groups", {}).items():
        for value, metrics in groups.items():
            rows += summary_rows(metrics, task=task, group=f"{key}={value}")
    return rows


def envelope(kind: str, metrics: Sequence[MetricRow], **details: Any) -> dict[str, Any]:
    return {"schema": RESULTS_SCHEMA, "kind": kind, "metrics": [m.to_dict() for m in metrics], **details}


def read_envelope(raw: dict[str, Any], where: str) -> tuple[str, list[MetricRow]]:
    """(kind, rows) of a results.json; one clear error for anything else."""
    if not isinstance(raw, dict) or raw.get("schema") != RESULTS_SCHEMA or "kind" not in raw:
        found = raw.get("schema") if isinstance(raw, dict) else type(raw).__name__
        raise DataError(f"{where}: not an lmaudit results file of schema {RESULTS_SCHEMA} (found {found!r})")
    rows = []
    for index, row in enumerate(raw.get("metrics", [])):
        try:
            rows.append(MetricRow(row["metric"], row.get("value"), row.get("stderr"),
                                  tuple(row["ci95"]) if row.get("ci95") else None, row.get("n"), row.get("task"),
                                  row.get("group")))
        except (KeyError, TypeError) as exc:
            raise DataError(f"{where}: metrics[{index}] is not a metric row ({exc})") from exc
    return raw["kind"], rows
