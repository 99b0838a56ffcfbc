"""A/B: two runs that share samples (two models, chat template on and off), compared pair by pair.

Samples pair on (task, sample id). For every metric both runs have, overall and per group, the row gives the
mean of each run over the pairs, the difference B - A with a paired bootstrap 95% CI, and for 0/1 scores
McNemar's exact p; the flips (samples one run got right and the other wrong) are listed for the browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lmaudit.core.types import SampleRecord
from lmaudit.maps import is_binary, mcnemar_exact, paired_bootstrap


@dataclass(frozen=True)
class PairedRow:
    task: str
    group: str | None  # "key=value", None for all pairs
    metric: str
    n_pairs: int
    mean_a: float
    mean_b: float
    diff: float  # mean_b - mean_a
    ci95: tuple[float, float]
    p_mcnemar: float | None  # 0/1 metrics only
    b_only: int  # pairs where B scored higher (0/1: B right, A wrong)
    a_only: int


@dataclass(frozen=True)
class Flip:
    task: str
    sample_id: str
    metric: str
    a: float
    b: float


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    rows: list[PairedRow]
    flips: list[Flip]
    shared: int  # samples both runs have
    only_a: int
    only_b: int


def _row(task: str, group: str | None, metric: str, pairs: Sequence[tuple[float, float]], seed: int) -> PairedRow:
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    diff, low, high = paired_bootstrap(a, b, seed=seed)
    b_only = sum(1 for x, y in pairs if y > x)
    a_only = sum(1 for x, y in pairs if x > y)
    p = mcnemar_exact(b_only, a_only) if is_binary(a) and is_binary(b) else None
    return PairedRow(task, group, metric, len(pairs), sum(a) / len(a), sum(b) / len(b), diff, (low, high), p,
                     b_only, a_only)


def compare(a_units: dict[str, list[SampleRecord]], b_units: dict[str, list[SampleRecord]],
            metrics: dict[str, list[str]], group_by: dict[str, list[str]], *, labels: tuple[str, str],
            seed: int = 0) -> Comparison:
    """Paired rows for every task both runs have; `metrics` and `group_by` per task (the primary metric first)."""
    rows: list[PairedRow] = []
    flips: list[Flip] = []
    shared = only_a = only_b = 0
    for task, a_records in a_units.items():
        b_by_id = {r.sample_id: r for r in b_units.get(task, [])}
        pairs = [(r, b_by_id[r.sample_id]) for r in a_records if r.sample_id in b_by_id]
        shared += len(pairs)
        only_a += len(a_records) - len(pairs)
        only_b += len(b_by_id) - len(pairs)
        if not pairs:
            continue
        for index, metric in enumerate(metrics.get(task, [])):
            scored = [(ra, rb) for ra, rb in pairs if metric in ra.scores and metric in rb.scores]
            if not scored:
                continue
            values = [(ra.scores[metric], rb.scores[metric]) for ra, rb in scored]
            rows.append(_row(task, None, metric, values, seed))
            for key in group_by.get(task, []):
                groups: dict[str, list[tuple[float, float]]] = {}
                for (ra, _), value in zip(scored, values):
                    if key in ra.metadata:
                        groups.setdefault(str(ra.metadata[key]), []).append(value)
                rows += [_row(task, f"{key}={name}", metric, groups[name], seed) for name in sorted(groups)]
            if index == 0 and is_binary([v for pair in values for v in pair]):
                flips += [Flip(task, ra.sample_id, metric, x, y) for (ra, _), (x, y) in zip(scored, values) if x != y]
    return Comparison(labels[0], labels[1], rows, flips, shared, only_a, only_b)
