"""Open any run directory for reading: its kind, its results envelope, its records and its figures.

A directory that is missing, empty, half-written (samples but no results.json yet) or holds a results.json of
another schema gives one ConfigError/DataError line that says which and what to do; nothing is modified.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.core.results import MetricRow, read_envelope
from lmaudit.core.types import SampleRecord
from lmaudit.runner import RunDir

MANIFEST, SAMPLES, RESULTS = "manifest.json", "samples.jsonl", "results.json"
FIGURE_SUFFIXES = (".png",)


@dataclass(frozen=True)
class RunSummary:
    """What results.json and manifest.json say, without reading the records (what `lmaudit show` needs)."""

    path: Path
    kind: str
    label: str
    rows: list[MetricRow]
    results: dict[str, Any]
    manifest: dict[str, Any]


@dataclass(frozen=True)
class Run(RunSummary):
    records: list[SampleRecord]
    figures: list[Path]

    @property
    def seed(self) -> int:
        value = self.results.get("seed", self.manifest.get("seed"))
        return int(value) if isinstance(value, int) else 0


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); the file is damaged") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; the file is damaged") from None


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def run_label(path: Path, manifest: dict[str, Any], results: dict[str, Any]) -> str:
    model = results.get("model") or manifest.get("model") or {}
    if isinstance(model, dict):
        name = model.get("spec") or model.get("name")
        if name:
            return str(name)
    return path.name


def read_summary(path: str | Path) -> RunSummary:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist")
    if not path.is_dir():
        raise ConfigError(f"{path} is not a directory: give a run directory (it holds results.json)")
    results_path, samples_path, manifest_path = path / RESULTS, path / SAMPLES, path / MANIFEST
    if not results_path.exists():
        if samples_path.exists() or manifest_path.exists():
            recorded = _count_lines(samples_path) if samples_path.exists() else 0
            raise ConfigError(f"{path} is an unfinished run: no results.json yet ({recorded} samples recorded); "
                              f"rerun the command that made it to resume and finish it")
        raise ConfigError(f"{path} is not an lmaudit run directory (no results.json, samples.jsonl or "
                          f"manifest.json)")
    if results_path.stat().st_size == 0:
        raise DataError(f"{results_path} is empty; rerun the command that made it to write it again")
    results = _read_json(results_path)
    kind, rows = read_envelope(results, str(results_path))
    manifest = _read_json(manifest_path) if manifest_path.exists() else {}
    if not isinstance(manifest, dict):
        raise DataError(f"{manifest_path}: expected a JSON object, got {type(manifest).__name__}")
    return RunSummary(path, kind, run_label(path, manifest, results), rows, results, manifest)


def open_run(path: str | Path) -> Run:
    """The summary plus every finished record (a torn last line of a killed run is skipped) and the figures."""
    summary = read_summary(path)
    if not os.access(summary.path, os.W_OK | os.X_OK):
        # RunDir (the one reader of samples.jsonl) checks that a run directory is writable, as its writers need
        raise ConfigError(f"{summary.path} is read-only; copy it to a writable place to report on it")
    records = RunDir(summary.path).records() if (summary.path / SAMPLES).exists() else []
    figures = sorted(p for p in summary.path.iterdir() if p.suffix.lower() in FIGURE_SUFFIXES and p.is_file()
                     and not p.name.startswith("."))
    return Run(summary.path, summary.kind, summary.label, summary.rows, summary.results, summary.manifest,
               records, figures)


def distinct_labels(runs: list[Run]) -> list[str]:
    """Run labels, with the directory name added where two runs share a model."""
    labels = [run.label for run in runs]
    return [f"{label} ({run.path.name})" if labels.count(label) > 1 else label for label, run in zip(labels, runs)]
