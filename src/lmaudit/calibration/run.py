"""Evaluate a letter-choice task, then write its calibration tables and reliability diagrams into the run directory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lmaudit.calibration.metrics import BINNINGS, VIEWS, CalibrationReport, CalibrationSlice, calibration_report
from lmaudit.core.errors import ConfigError
from lmaudit.core.output import MAX_BARS, bar_chart, write_json_atomic, write_jsonl
from lmaudit.models.base import Model
from lmaudit.runner import RunDir, evaluate
from lmaudit.tasks.base import Task



@dataclass(frozen=True)
class CalibrationRun:
    run_dir: Path
    report: CalibrationReport
    requests_sent: int  # model calls this invocation made (0 when everything came from the cache or a resume)
    files: tuple[Path, ...]


def slices(report: CalibrationReport) -> list[tuple[str | None, str | None, CalibrationSlice]]:
    """(grouping key, group, slice): overall first (None, None)."""
    rows: list[tuple[str | None, str | None, CalibrationSlice]] = [(None, None, report.overall)]
    rows += [(key, name, part) for key, values in report.groups.items() for name, part in values.items()]
    return rows


def write_calibration(report: CalibrationReport, directory: str | Path, title: str) -> list[Path]:
    """calibration.json, calibration_bins.jsonl, calibration_groups.jsonl and the PNG plots."""
    from lmaudit.calibration.plots import reliability_figure

    directory = Path(directory)
    files = [directory / "calibration.json"]
    write_json_atomic(files[0], report.to_dict())
    bins, groups = [], []
    for key, name, part in slices(report):
        where = {"group_key": key, "group": name}
        for view in VIEWS:
            for binning in BINNINGS:
                reliability = part.get(view, binning)
                bins += [{**where, "view": view, "binning": binning, **vars(b)} for b in reliability.bins]
        groups.append({**where, "n_items": part.n_items, "accuracy": part.accuracy.to_dict(),
                       "confidence": part.confidence.to_dict(), "brier": part.brier.to_dict(),
                       **{f"ece_{view}_{binning}": part.get(view, binning).ece.to_dict()
                          for view in VIEWS for binning in BINNINGS}})
    files.append(write_jsonl(directory / "calibration_bins.jsonl", bins))
    files.append(write_jsonl(directory / "calibration_groups.jsonl", groups))
    for binning in BINNINGS:
        files.append(reliability_figure(report.overall, binning, directory / f"reliability_{binning}.png", title))
    for key, values in report.groups.items():
        if 1 < len(values) <= MAX_BARS:
            series = {"accuracy": [(name, part.accuracy) for name, part in values.items()],
                      "ECE (top choice)": [(name, part.get("top", "width").ece) for name, part in values.items()]}
            files.append(bar_chart(series, directory / f"calibration_by_{key}.png",
                                   f"{title}: accuracy and ECE by {key}", "value"))
    return files


def run_calibration(model: Model, task: Task, output_dir: str | Path | None = None, *, limit: int | None = None,
                    seed: int = 0, group_by: Sequence[str] | None = None, n_bins: int = 10,
                    cache_path: str | Path | None = None, progress: bool = True,
                    model_spec: str | None = None) -> CalibrationRun:
    """The task's plain eval (so it shares the cache with `lmaudit eval`), then calibration from its records."""
    if n_bins < 1:
        raise ConfigError(f"the number of bins must be >= 1, got {n_bins}")
    result = evaluate(model, [task], output_dir, limit=limit, seed=seed, cache_path=cache_path, progress=progress,
                      model_spec=model_spec, options={"analysis": "calibration", "n_bins": n_bins})
    records = [r for r in RunDir(result.run_dir).records() if r.task == task.name]
    keys = list(task.group_by) if group_by is None else list(group_by)
    report = calibration_report(records, keys, n_bins=n_bins, seed=seed)
    title = f"{model_spec or model.name} on {task.name}"
    files = write_calibration(report, result.run_dir, title)
    return CalibrationRun(result.run_dir, report, result.requests_sent, tuple(files))
