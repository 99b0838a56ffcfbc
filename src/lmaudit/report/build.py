"""build_report(): run directories in, one self-contained HTML file out."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError
from lmaudit.maps import (
    DEFAULT_MIN_N,
    Hierarchy,
    KnowledgeMap,
    Layout,
    MapRun,
    build_map,
    flat,
    layout,
    resolve,
    suggest,
)
from lmaudit.report.ab import Comparison, compare
from lmaudit.report.html import render
from lmaudit.report.payload import (
    SampleColumns,
    Strings,
    add_samples,
    comparison_dict,
    figure_list,
    map_dict,
    row_list,
)
from lmaudit.report.recompute import Checked, Recomputed, check, recompute
from lmaudit.report.runs import Run, distinct_labels, open_run

VIEWS = ("summary", "samples", "ab", "map")


@dataclass(frozen=True)
class Report:
    path: Path
    bytes: int
    runs: list[str]
    samples: int
    checks: dict[str, dict[str, int]]  # per run: rows per status (match, differs, as written)
    comparisons: list[Comparison]
    maps: list[KnowledgeMap]
    layouts: list[Layout]
    seconds: float
    notes: list[str] = field(default_factory=list)


def contamination_flags(run: Run, extra: Path | None) -> dict[tuple[str, str], bool | None]:
    """(task, sample id) -> contaminated, from the run's contamination.json (eval --contamination) or `extra`
    (a flags file or a contamination run directory)."""
    sources = []
    if extra is not None:
        sources.append(extra)
    info = run.path / "contamination.json"
    if info.exists():
        try:
            named = json.loads(info.read_text(encoding="utf-8")).get("flags")
        except (json.JSONDecodeError, AttributeError):
            named = None
        if named and Path(named).exists():
            sources.append(Path(named))
    flags: dict[tuple[str, str], bool | None] = {}
    if not sources:
        return flags
    from lmaudit.contamination import read_flags

    for source in sources:
        flags.update({key: flag.contaminated for key, flag in read_flags(_flags_file(source)).items()})
    return flags


def _flags_file(path: Path) -> Path:
    """A flags file, or the flags.jsonl of a contamination run directory."""
    return path / "flags.jsonl" if path.is_dir() else path


def _known(recomputed: Recomputed, task: str, metric: str) -> dict[str, dict[str, Any]]:
    """The recomputed rows of `task` and `metric` by group ("" overall), for the map to reuse."""
    return {row.group or "": {"value": row.value, "stderr": row.stderr, "ci95": row.ci95, "n": row.n}
            for row in recomputed.rows if row.task == task and row.metric == metric}


def _maps(runs: Sequence[Run], labels: Sequence[str], recomputed: Sequence[Recomputed],
          hierarchy: str | Hierarchy | None, metric: str | None, min_n: int, *, flat_fallback: bool,
          difference_only: bool) -> list[tuple[KnowledgeMap, str, list[int], Layout]]:
    """One map per task that a hierarchy applies to, with every run that has that task side by side.

    "auto" takes the built-in hierarchy whose leaves cover the task's group values (MMLU subjects, TruthfulQA
    or JBB categories); with `flat_fallback`, a task no built-in covers gets a flat map of its first group key.
    """
    if hierarchy == "none":
        return []
    chosen = hierarchy if isinstance(hierarchy, Hierarchy) else (
        None if hierarchy in (None, "auto") else resolve(hierarchy))
    tasks: dict[str, list[int]] = {}
    for index, rc in enumerate(recomputed):
        for task, units in rc.units.items():
            if units:
                tasks.setdefault(task, []).append(index)
    out = []
    for task, indices in tasks.items():
        units = [recomputed[i].units[task] for i in indices]
        found: Hierarchy | None = chosen or suggest(u for group in units for u in group)
        keys = recomputed[indices[0]].group_by.get(task) or []
        if found is None and flat_fallback and keys:
            found = flat(keys[0], [str(u.metadata[keys[0]]) for group in units for u in group if keys[0] in u.metadata])
        if found is None or not any(found.key in u.metadata for group in units for u in group):
            continue
        names = recomputed[indices[0]].metrics.get(task) or []
        wanted = metric or (names[0] if names else None)
        if wanted is None or not any(wanted in u.scores for group in units for u in group):
            continue
        kmap = build_map([MapRun(labels[i], u, runs[i].seed, _known(recomputed[i], task, wanted))
                          for i, u in zip(indices, units)], found, wanted, min_n=min_n)
        out.append((kmap, task, indices, layout(kmap, difference_only=difference_only)))
    if chosen is not None and not out:
        raise ConfigError(f"no run has records with the hierarchy's key '{chosen.key}'"
                          + (f" and metric '{metric}'" if metric else ""))
    return out


def build_report(run_dirs: Sequence[str | Path], output: str | Path, *, hierarchy: str | Hierarchy | None = "auto",
                 metric: str | None = None, min_n: int = DEFAULT_MIN_N, contamination: str | Path | None = None,
                 title: str | None = None, view: str = "summary", flat_fallback: bool = False,
                 difference_only: bool = False) -> Report:
    """Read every run, recompute and check its numbers, compare runs pairwise with the first, draw the maps.

    `hierarchy`: "auto" (a built-in one where it applies), "none", a built-in name, a file, or a Hierarchy.
    """
    started = time.perf_counter()
    if not run_dirs:
        raise ConfigError("give at least one run directory")
    if view not in VIEWS:
        raise ConfigError(f"unknown view '{view}'; choose from {', '.join(VIEWS)}")
    extra = Path(contamination) if contamination is not None else None
    if extra is not None and not _flags_file(extra).is_file():
        raise ConfigError(f"--contamination {extra}: no flags file there (give a flags .jsonl or a contamination "
                          f"run directory)")
    output = Path(output)
    if output.is_dir():
        raise ConfigError(f"{output} is a directory; give the report's file name (e.g. {output / 'report.html'})")
    if not output.parent.is_dir():
        raise ConfigError(f"the folder of {output} does not exist")
    with _no_cyclic_gc():
        return _build(run_dirs, output, started, hierarchy=hierarchy, metric=metric, min_n=min_n, extra=extra,
                      title=title, view=view, flat_fallback=flat_fallback, difference_only=difference_only)


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """A report allocates millions of small acyclic objects (records, payload lists); the cycle collector's
    scans of them cost a third of the build. Reference counting still frees everything."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _build(run_dirs: Sequence[str | Path], output: Path, started: float, *, hierarchy: str | Hierarchy | None,
           metric: str | None, min_n: int, extra: Path | None, title: str | None, view: str, flat_fallback: bool,
           difference_only: bool) -> Report:
    runs = [open_run(path) for path in run_dirs]
    labels = distinct_labels(runs)
    shared: dict[str, Any] = {}  # tasks rebuilt for one run serve every run with the same task settings
    recomputed = [recompute(run, shared) for run in runs]
    checked: list[list[Checked]] = [check(run, rc) for run, rc in zip(runs, recomputed)]

    strings, columns = Strings(), SampleColumns.empty()
    where = [add_samples(columns, index, run, rc, strings, contamination_flags(run, extra))
             for index, (run, rc) in enumerate(zip(runs, recomputed))]
    comparisons: list[tuple[Comparison, int]] = []
    for index in range(1, len(runs)):
        shared_tasks = set(recomputed[0].units) & set(recomputed[index].units)
        if not shared_tasks:
            continue
        comparison = compare(recomputed[0].units, recomputed[index].units, recomputed[0].metrics,
                             recomputed[0].group_by, labels=(labels[0], labels[index]), seed=runs[0].seed)
        if comparison.shared:
            comparisons.append((comparison, index))
    maps = _maps(runs, labels, recomputed, hierarchy, metric, min_n, flat_fallback=flat_fallback,
                 difference_only=difference_only)

    notes = [f"{label}: {note}" for label, rc in zip(labels, recomputed) for note in rc.notes]
    payload = {
        "title": title or "lmaudit report: " + ", ".join(labels),
        "view": view,
        "runs": [{"label": label, "kind": run.kind, "path": str(run.path), "n": len(run.records),
                  "method": rc.method, "notes": rc.notes, "rows": row_list(rows), "figures": figure_list(run),
                  "metrics": rc.metrics, "groupBy": rc.group_by}
                 for label, run, rc, rows in zip(labels, runs, recomputed, checked)],
        "samples": columns.to_dict(),
        "comparisons": [comparison_dict(c, 0, b, where) for c, b in comparisons],
        "maps": [map_dict(kmap, plan, task, indices) for kmap, task, indices, plan in maps],
        "strings": strings.table,
    }
    size = render(payload, output)
    checks = {label: {status: sum(1 for c in rows if c.status == status) for status in {c.status for c in rows}}
              for label, rows in zip(labels, checked)}
    return Report(output, size, labels, len(columns.run), checks, [c for c, _ in comparisons],
                  [m[0] for m in maps], [m[3] for m in maps], time.perf_counter() - started, notes)
