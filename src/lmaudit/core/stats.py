"""Aggregation of per-sample scores: mean, standard error and a seeded percentile bootstrap CI."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


RESAMPLES = 1000  # bootstrap resamples of every CI unless asked otherwise


@dataclass(frozen=True)
class MetricSummary:
    value: float
    stderr: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "stderr": self.stderr, "ci95": [self.ci_low, self.ci_high], "n": self.n}


def summarize(values: list[float], *, seed: int = 0, resamples: int = RESAMPLES) -> MetricSummary:
    """Mean with the sample standard error (as lm-eval reports it) and a 95% bootstrap CI."""
    arr = np.asarray(values, dtype=np.float64)
    n = arr.size
    if n == 0:
        nan = float("nan")
        return MetricSummary(nan, nan, nan, nan, 0)
    mean = float(arr.mean())
    stderr = float(arr.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    rng = np.random.default_rng(seed)
    # Resample in blocks so memory stays bounded for large n.
    means = np.empty(resamples)
    block = max(1, 2_000_000 // n)
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = arr[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return MetricSummary(mean, stderr, float(low), float(high), n)
