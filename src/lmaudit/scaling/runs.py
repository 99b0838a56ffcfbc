"""The runs table: one row per training run with N, D, C = 6ND, the final held-out loss and its loss curve.

Written as CSV (the curve as a JSON string column) and JSON; read back from CSV, JSON or JSONL, from this
toolkit or from a user's own training logs (only `loss` and `compute`, or `n_params` and `tokens`, are needed).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lmaudit.core.errors import DataError, RowError
from lmaudit.data import Row, read_rows
from lmaudit.runner import RunDir

COLUMNS = ["name", "role", "n_params", "tokens", "compute", "loss", "wall_seconds", "loss_curve"]


@dataclass(frozen=True)
class CurvePoint:
    step: int
    tokens: int
    train_loss: float
    heldout_loss: float


@dataclass(frozen=True)
class RunRecord:
    """N is non-embedding parameters, D training tokens, C = 6 N D (FLOPs), loss in nats per token."""

    name: str
    loss: float
    compute: float
    n_params: int | None = None
    tokens: int | None = None
    wall_seconds: float | None = None
    role: str = "ladder"
    config: dict[str, Any] = field(default_factory=dict)
    loss_curve: tuple[CurvePoint, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["loss_curve"] = [asdict(p) for p in self.loss_curve]
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunRecord":
        fields = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        fields["loss_curve"] = tuple(CurvePoint(**p) for p in raw.get("loss_curve") or ())
        return cls(**fields)


def write_runs(runs: list[RunRecord], stem: str | Path) -> tuple[Path, Path]:
    """Write `<stem>.csv` and `<stem>.json`; returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for run in runs:
            curve = json.dumps([asdict(p) for p in run.loss_curve], separators=(",", ":"))
            writer.writerow([run.name, run.role, _blank(run.n_params), _blank(run.tokens), repr(run.compute),
                             repr(run.loss), _blank(run.wall_seconds), curve])
    json_path.write_text(json.dumps([r.to_dict() for r in runs], indent=1) + "\n")
    return csv_path, json_path


def _blank(value: Any) -> str:
    return "" if value is None else repr(value)


def _number(row: Row, name: str, *, required: bool) -> float | None:
    raw = row.values.get(name)
    if raw is None or raw == "":
        if required:
            raise RowError(row.path, row.line, name, f"missing value (columns: {', '.join(row.values)})")
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise RowError(row.path, row.line, name, f"not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise RowError(row.path, row.line, name, f"must be a finite number, got {raw!r}")
    if value <= 0:
        raise RowError(row.path, row.line, name, f"must be positive, got {raw!r}")
    return value


def _run_from_row(row: Row) -> RunRecord:
    loss = _number(row, "loss", required=True)
    n_params = _number(row, "n_params", required=False)
    tokens = _number(row, "tokens", required=False)
    compute = _number(row, "compute", required=False)
    if compute is None:
        if n_params is None or tokens is None:
            raise RowError(row.path, row.line, "compute", "give 'compute', or 'n_params' and 'tokens' (C = 6 N D)")
        compute = 6.0 * n_params * tokens
    curve_raw = row.values.get("loss_curve") or []
    try:
        curve = json.loads(curve_raw) if isinstance(curve_raw, str) else curve_raw
        loss_curve = tuple(CurvePoint(**p) for p in curve)
    except (json.JSONDecodeError, TypeError) as exc:
        raise RowError(row.path, row.line, "loss_curve", f"not a list of curve points: {exc}") from None
    wall = row.values.get("wall_seconds")
    return RunRecord(
        name=str(row.values.get("name") or f"row{row.line}"), loss=float(loss), compute=float(compute),
        n_params=None if n_params is None else int(n_params), tokens=None if tokens is None else int(tokens),
        wall_seconds=float(wall) if wall not in (None, "") else None, role=str(row.values.get("role") or "ladder"),
        config=row.values.get("config") or {}, loss_curve=loss_curve,
    )


def read_runs(path: str | Path) -> list[RunRecord]:
    """Runs from a CSV/JSON/JSONL table; a bad value raises a RowError naming the row and the column."""
    runs = [_run_from_row(row) for row in read_rows(path)]
    if not runs:
        raise DataError(f"{path}: the runs table has no rows")
    return runs


def _row_pass_rates(row: Row) -> list[tuple[str, float]]:
    if str(row.values.get("run") or "").strip():
        return _run_pass_rates(row)
    problem = str(row.values.get("problem") or "").strip()
    if not problem:
        raise RowError(row.path, row.line, "problem", "missing value (give problem and pass_rate, or run)")
    raw = row.values.get("pass_rate")
    try:
        rate = float(raw)
    except (TypeError, ValueError):
        raise RowError(row.path, row.line, "pass_rate", f"not a number: {raw!r}") from None
    if not 0 <= rate <= 1:
        raise RowError(row.path, row.line, "pass_rate", f"must be in [0, 1], got {raw!r}")
    return [(problem, rate)]


def _run_pass_rates(row: Row) -> list[tuple[str, float]]:
    folder = Path(str(row.values["run"]).strip())
    if not folder.is_absolute():
        folder = Path(row.path).parent / folder
    if not (folder / "samples.jsonl").is_file():
        raise RowError(row.path, row.line, "run", f"{folder} is not a run directory (no samples.jsonl)")
    found = [(f"{r.task}/{r.sample_id}", float(r.scores["pass_rate"])) for r in RunDir(folder).records()
             if "pass_rate" in r.scores]
    if not found:
        raise RowError(row.path, row.line, "run", f"no record in {folder} has a pass_rate score (it comes from "
                                                  "code-eval tasks such as humaneval or mbpp)")
    return found


def read_pass_rates(path: str | Path) -> tuple[list[float], list[list[float]], list[str]]:
    """Per-problem pass rates as (compute per model, pass rates [model][problem], problem ids).

    The table has columns model and compute, and per row either problem and pass_rate, or run: the directory of
    a code-eval run (`lmaudit eval --tasks humaneval -n 20 ...`), whose records' pass_rate scores are read, one
    problem per task and sample id. A relative run path is taken from the table's folder. Every model must rate
    every problem once.
    """
    compute: dict[str, float] = {}
    rates: dict[str, dict[str, float]] = {}
    for row in read_rows(path):
        model = str(row.values.get("model") or "").strip()
        if not model:
            raise RowError(row.path, row.line, "model", "missing value")
        value = _number(row, "compute", required=True)
        if model in compute and compute[model] != value:
            raise RowError(row.path, row.line, "compute", f"model '{model}' already has compute {compute[model]!r}")
        compute[model] = value
        for problem, rate in _row_pass_rates(row):
            if problem in rates.setdefault(model, {}):
                raise RowError(row.path, row.line, "problem", f"model '{model}' already has a row for '{problem}'")
            rates[model][problem] = rate
    if not compute:
        raise DataError(f"{path}: the pass-rate table has no rows")
    problems = sorted({p for per_model in rates.values() for p in per_model})
    models = sorted(compute, key=lambda m: compute[m])
    for model in models:
        missing = [p for p in problems if p not in rates[model]]
        if missing:
            raise DataError(f"{path}: model '{model}' has no row for problem(s) {', '.join(missing[:5])}")
    return [compute[m] for m in models], [[rates[m][p] for p in problems] for m in models], problems
