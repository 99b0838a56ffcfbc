"""From SampleRecords to metric summaries: overall and per group. Every analysis that re-slices records uses this."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from lmaudit.core.errors import ConfigError
from lmaudit.core.stats import RESAMPLES, summarize
from lmaudit.core.types import SampleRecord

T = TypeVar("T")

# Below this many bootstrap draws (values x resamples, all groups together) threads cost more than they save.
_THREADED_DRAWS = 5_000_000


def summarize_records(records: Sequence[SampleRecord], metrics: Iterable[str], *, seed: int = 0) -> dict[str, Any]:
    """{metric: {value, stderr, ci95, n}} over the records that carry that metric."""
    out = {}
    for metric in metrics:
        values = [r.scores[metric] for r in records if metric in r.scores]
        out[metric] = summarize(values, seed=seed).to_dict()
    return out


def aggregate(records: Sequence[SampleRecord], metrics: Sequence[str], group_by: Sequence[str] = (),
              *, seed: int = 0) -> dict[str, Any]:
    """Overall metrics plus one breakdown per metadata key in `group_by`."""
    slices: list[tuple[str, str, list[SampleRecord]]] = []
    for key in group_by:
        buckets: dict[str, list[SampleRecord]] = defaultdict(list)
        for record in records:
            if key in record.metadata:
                buckets[str(record.metadata[key])].append(record)
        slices += [(key, name, members) for name, members in sorted(buckets.items())]

    def summary(members: Sequence[SampleRecord]) -> dict[str, Any]:
        return summarize_records(members, metrics, seed=seed)

    # Each slice's bootstrap has its own seeded generator, and numpy draws and gathers without the GIL, so the
    # slices run in threads with the same numbers as one after another.
    jobs = [records] + [members for _, _, members in slices]
    draws = sum(map(len, jobs)) * len(metrics) * RESAMPLES
    threads = min(os.cpu_count() or 1, 4) if draws >= _THREADED_DRAWS else 1
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            overall, *per_slice = pool.map(summary, jobs)
    else:
        overall, *per_slice = map(summary, jobs)
    groups: dict[str, dict[str, Any]] = {key: {} for key in group_by}
    for (key, name, _), result in zip(slices, per_slice):
        groups[key][name] = result
    return {"n_samples": len(records), "metrics": overall, "groups": groups}


def group_buckets(entries: Sequence[tuple[dict[str, Any], T]], key: str) -> dict[str, list[T]]:
    """Entries by the value of metadata `key` (sorted by value); a ConfigError if no entry has that key."""
    buckets: dict[str, list[T]] = defaultdict(list)
    for metadata, entry in entries:
        if key in metadata:
            buckets[str(metadata[key])].append(entry)
    if entries and not buckets:
        present = sorted({k for metadata, _ in entries for k in metadata})
        raise ConfigError(f"no record has the metadata column '{key}' to group by; present: {', '.join(present)}")
    return dict(sorted(buckets.items()))
