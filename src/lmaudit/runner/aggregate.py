"""From SampleRecords to metric summaries: overall and per group. Every analysis that re-slices records uses this."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from lmaudit.core.errors import ConfigError
from lmaudit.core.stats import summarize
from lmaudit.core.types import SampleRecord

T = TypeVar("T")


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
    groups: dict[str, dict[str, Any]] = {}
    for key in group_by:
        buckets: dict[str, list[SampleRecord]] = defaultdict(list)
        for record in records:
            if key in record.metadata:
                buckets[str(record.metadata[key])].append(record)
        groups[key] = {name: summarize_records(members, metrics, seed=seed) for name, members in sorted(buckets.items())}
    return {"n_samples": len(records), "metrics": summarize_records(records, metrics, seed=seed), "groups": groups}


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
