"""Scores of a run on its full, clean and contaminated subsets, and the lower of full and clean.

The GPT-4 report gives each benchmark's score on all items and on the items not found in training data,
and takes the lower of the two as the figure to trust. Records and flags meet on (task, sample_id).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lmaudit.contamination.results import Flag, as_flag_map
from lmaudit.core.errors import ConfigError
from lmaudit.core.types import SampleRecord
from lmaudit.runner.aggregate import aggregate

SUBSETS = ("full", "clean", "contaminated")


def split_scores(records: Sequence[SampleRecord],
                 flags: Mapping[tuple[str, str], Flag] | Iterable[Flag] | str | Path,
                 metrics: Sequence[str], group_by: Sequence[str] = (), *, seed: int = 0) -> dict[str, Any]:
    """Every metric on the full, clean and contaminated subsets of `records`, side by side.

    `flags` is a flags file (as `lmaudit contamination` writes it), or Flags. A record whose item was not
    checked (no row for it, or `contaminated` null: too short to check) counts in "full" only. Returns
        {"subsets": {"full"|"clean"|"contaminated": aggregate(...)},
         "counts": {"full", "clean", "contaminated", "unchecked"},
         "contaminated_fraction": contaminated / checked,
         "reported": {metric: {"value": min(full, clean), "subset": "full" or "clean"}},
         "methods": [methods the flags came from]}
    where "reported" is None for a metric when the clean subset is empty.
    """
    by_key = as_flag_map(flags)
    tasks_flagged = {task for task, _ in by_key}
    missing_tasks = sorted({r.task for r in records} - tasks_flagged)
    if missing_tasks:
        raise ConfigError(f"the flags have no row for task(s) {', '.join(missing_tasks)} (they cover: "
                          f"{', '.join(sorted(tasks_flagged)) or 'nothing'}); check that task with "
                          f"`lmaudit contamination --task {missing_tasks[0]}`")
    verdicts = [by_key[(r.task, r.sample_id)].contaminated if (r.task, r.sample_id) in by_key else None
                for r in records]
    members = {
        "full": list(records),
        "clean": [r for r, v in zip(records, verdicts) if v is False],
        "contaminated": [r for r, v in zip(records, verdicts) if v is True],
    }
    subsets = {name: aggregate(chosen, metrics, group_by, seed=seed) for name, chosen in members.items()}
    checked = len(members["clean"]) + len(members["contaminated"])
    reported: dict[str, Any] = {}
    for metric in metrics:
        full = subsets["full"]["metrics"][metric]["value"]
        clean = subsets["clean"]["metrics"][metric]["value"]
        if math.isnan(clean):
            reported[metric] = None
        else:
            reported[metric] = {"value": min(full, clean), "subset": "clean" if clean < full else "full"}
    return {
        "subsets": subsets,
        "counts": {"full": len(records), "clean": len(members["clean"]),
                   "contaminated": len(members["contaminated"]), "unchecked": len(records) - checked},
        "contaminated_fraction": len(members["contaminated"]) / checked if checked else float("nan"),
        "reported": reported,
        "methods": sorted({by_key[(r.task, r.sample_id)].method for r in records if (r.task, r.sample_id) in by_key}),
    }
