"""Calibration of option probabilities: reliability bins, ECE, MCE and Brier score, with bootstrap CIs.

Two views of the same probabilities:
- "options": every option of every item is a point (its probability, and whether it is the gold), as in the
  GPT-4 report's calibration figure;
- "top": one point per item (the top option's probability, and whether the top option is the gold).
Two binnings: "width" (equal-width bins over [0, 1]) and "mass" (points sorted by probability, split into bins of
equal size; ties keep item order, so the binning is deterministic).

ECE = sum over bins of (points in bin / points) * |accuracy - mean probability|; MCE = the largest such gap over
non-empty bins; Brier = mean over items of sum over options (p - [option is gold])^2. Confidence intervals are
95% percentile bootstraps over items (an item's option points stay together), seeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lmaudit.calibration.options import OptionProbs, option_probs
from lmaudit.core.errors import ConfigError
from lmaudit.core.stats import MetricSummary, summarize
from lmaudit.core.types import SampleRecord
from lmaudit.runner.aggregate import group_buckets

VIEWS = ("options", "top")
BINNINGS = ("width", "mass")
RESAMPLES = 1000


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float  # width: the bin's edges; mass: the smallest and largest probability in it
    upper: float
    count: int
    confidence: float  # mean probability of the points in the bin
    accuracy: float  # share of those points that are correct


@dataclass(frozen=True)
class Reliability:
    view: str
    binning: str
    bins: tuple[ReliabilityBin, ...]
    ece: MetricSummary
    mce: MetricSummary

    def to_dict(self) -> dict[str, Any]:
        return {"view": self.view, "binning": self.binning, "bins": [asdict(b) for b in self.bins],
                "ece": self.ece.to_dict(), "mce": self.mce.to_dict()}


@dataclass(frozen=True)
class CalibrationSlice:
    n_items: int
    accuracy: MetricSummary  # top option is the gold
    confidence: MetricSummary  # top option's probability
    brier: MetricSummary
    outside_mass: MetricSummary | None  # None when some record's label set is not prefix-free
    reliability: tuple[Reliability, ...]

    def get(self, view: str, binning: str) -> Reliability:
        return next(r for r in self.reliability if r.view == view and r.binning == binning)

    def to_dict(self) -> dict[str, Any]:
        return {"n_items": self.n_items, "accuracy": self.accuracy.to_dict(), "confidence": self.confidence.to_dict(),
                "brier": self.brier.to_dict(),
                "outside_mass": self.outside_mass.to_dict() if self.outside_mass else None,
                "reliability": {f"{r.view}/{r.binning}": r.to_dict() for r in self.reliability}}


@dataclass(frozen=True)
class CalibrationReport:
    n_bins: int
    overall: CalibrationSlice
    groups: dict[str, dict[str, CalibrationSlice]]

    def to_dict(self) -> dict[str, Any]:
        return {"n_bins": self.n_bins, "overall": self.overall.to_dict(),
                "groups": {key: {name: s.to_dict() for name, s in values.items()}
                           for key, values in self.groups.items()}}


@dataclass
class _Points:
    confidence: np.ndarray
    correct: np.ndarray
    item: np.ndarray  # which item each point belongs to


def _points(items: Sequence[OptionProbs], view: str) -> _Points:
    if view == "top":
        return _Points(np.array([max(i.probs) for i in items]), np.array([float(i.chosen == i.gold) for i in items]),
                       np.arange(len(items)))
    return _Points(np.array([p for i in items for p in i.probs]),
                   np.array([float(j == i.gold) for i in items for j in range(len(i.probs))]),
                   np.array([n for n, i in enumerate(items) for _ in i.probs]))


def _width_totals(points: _Points, weights: np.ndarray, n_bins: int) -> tuple[np.ndarray, ...]:
    """Per-bin (count, probability sum, correct sum) for each row of item weights (resamples x items)."""
    bins = np.minimum((points.confidence * n_bins).astype(int), n_bins - 1)
    onehot = np.zeros((len(bins), n_bins))
    onehot[np.arange(len(bins)), bins] = 1.0
    w = weights[:, points.item]
    return w @ onehot, (w * points.confidence) @ onehot, (w * points.correct) @ onehot


def _mass_totals(points: _Points, weights: np.ndarray, n_bins: int) -> tuple[np.ndarray, ...]:
    """As _width_totals, with each weighted sample sorted by probability and cut into equal-size bins."""
    order = np.argsort(points.confidence, kind="stable")
    confidence, correct, item = points.confidence[order], points.correct[order], points.item[order]
    out = np.zeros((3, len(weights), n_bins))
    for row, w in enumerate(weights.astype(int)):
        copies = np.repeat(np.arange(len(order)), w[item])
        if copies.size == 0:
            continue
        used = min(n_bins, copies.size)
        quotient, remainder = divmod(copies.size, used)
        sizes = [quotient + 1] * remainder + [quotient] * (used - remainder)  # as np.array_split cuts
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        out[0, row, :len(sizes)] = sizes
        out[1, row, :len(sizes)] = np.add.reduceat(confidence[copies], starts)
        out[2, row, :len(sizes)] = np.add.reduceat(correct[copies], starts)
    return out[0], out[1], out[2]


def _ece_mce(counts: np.ndarray, conf: np.ndarray, corr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gaps = np.abs(corr - conf)
    ece = gaps.sum(axis=1) / counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mce = np.where(counts > 0, gaps / counts, 0.0).max(axis=1)
    return ece, mce


def _summary(point: float, replicates: np.ndarray, n: int) -> MetricSummary:
    low, high = np.percentile(replicates, [2.5, 97.5])
    stderr = float(replicates.std(ddof=1)) if replicates.size > 1 else float("nan")
    return MetricSummary(float(point), stderr, float(low), float(high), n)


def _reliability(items: Sequence[OptionProbs], view: str, binning: str, n_bins: int, seed: int) -> Reliability:
    points = _points(items, view)
    totals = _width_totals if binning == "width" else _mass_totals
    ones = np.ones((1, len(items)))
    counts, conf, corr = (t[0] for t in totals(points, ones, n_bins))
    ordered = np.sort(points.confidence)
    bins = []
    for b in range(n_bins):
        if counts[b] == 0:
            continue
        if binning == "width":
            lower, upper = b / n_bins, (b + 1) / n_bins
        else:
            start = int(counts[:b].sum())
            lower, upper = float(ordered[start]), float(ordered[start + int(counts[b]) - 1])
        bins.append(ReliabilityBin(lower, upper, int(counts[b]), float(conf[b] / counts[b]),
                                   float(corr[b] / counts[b])))
    ece, mce = _ece_mce(counts[None], conf[None], corr[None])
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(items), size=(RESAMPLES, len(items)))
    weights = np.zeros((RESAMPLES, len(items)))
    np.add.at(weights, (np.repeat(np.arange(RESAMPLES), len(items)), draws.ravel()), 1.0)
    boot_ece, boot_mce = _ece_mce(*totals(points, weights, n_bins))
    n = len(items)
    return Reliability(view, binning, tuple(bins), _summary(ece[0], boot_ece, n), _summary(mce[0], boot_mce, n))


def calibration_slice(items: Sequence[OptionProbs], *, n_bins: int = 10, seed: int = 0) -> CalibrationSlice:
    if not items:
        raise ConfigError("calibration needs at least one multiple-choice record")
    if n_bins < 1:
        raise ConfigError(f"the number of bins must be >= 1, got {n_bins}")
    brier = [float(sum((p - (j == i.gold)) ** 2 for j, p in enumerate(i.probs))) for i in items]
    outside = [i.outside_mass for i in items if i.outside_mass is not None]
    return CalibrationSlice(
        n_items=len(items),
        accuracy=summarize([float(i.chosen == i.gold) for i in items], seed=seed),
        confidence=summarize([max(i.probs) for i in items], seed=seed),
        brier=summarize(brier, seed=seed),
        outside_mass=summarize(outside, seed=seed) if len(outside) == len(items) else None,
        reliability=tuple(_reliability(items, view, binning, n_bins, seed) for view in VIEWS for binning in BINNINGS),
    )


def calibration_report(records: Sequence[SampleRecord], group_by: Sequence[str] = (), *, n_bins: int = 10,
                       seed: int = 0) -> CalibrationReport:
    """Calibration overall and per value of each metadata key in `group_by` (subject, language, ...)."""
    records = sorted(records, key=lambda r: (r.task, r.sample_id))  # file order varies with resumes
    items = [option_probs(r) for r in records]
    entries = [(r.metadata, item) for r, item in zip(records, items)]
    groups = {key: {name: calibration_slice(members, n_bins=n_bins, seed=seed)
                    for name, members in group_buckets(entries, key).items()} for key in group_by}
    return CalibrationReport(n_bins, calibration_slice(items, n_bins=n_bins, seed=seed), groups)
