"""Aggregation of per-sample scores: mean, standard error and a seeded percentile bootstrap CI."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

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


_NORMAL = NormalDist()


def _bisect(f, low: float, high: float, steps: int = 80) -> float:
    """The root of an increasing f between low and high."""
    for _ in range(steps):
        middle = 0.5 * (low + high)
        if f(middle) < 0.0:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def _acceptance(mu: float, level: float, one_sided: float, two_sided: float) -> tuple[float, float]:
    """Feldman and Cousins's acceptance region [x1, x2] at mean mu >= 0, for x ~ N(mu, 1): the x with the largest
    likelihood ratio against the best mean allowed (max(x, 0)), up to probability `level`. Far from 0 it is
    mu -+ z(level) (`two_sided`); at 0 it is one-sided, x <= `one_sided`, the `level` quantile."""
    if mu >= two_sided:
        return mu - two_sided, mu + two_sided
    if mu <= 0.0:
        return -math.inf, one_sided
    # Where the half-width k exceeds mu, the region's left end is the negative x with ratio exp(x mu - mu^2 / 2)
    # equal to the bound exp(-k^2 / 2) at the right end.
    cdf = _NORMAL.cdf
    half = _bisect(lambda k: cdf(k) - cdf(-(mu * mu + k * k) / (2.0 * mu)) - level, mu, two_sided)
    return (mu * mu - half * half) / (2.0 * mu), mu + half


def bounded_normal_interval(value: float, stderr: float, *, level: float = 0.95, low: float = 0.0,
                            high: float = 1.0, stderr_at: Callable[[float], float] | None = None
                            ) -> tuple[float, float]:
    """A `level` interval for a quantity known to lie in [low, high], from an estimate `value` (not clipped: it
    may fall outside) with normal error `stderr`: Feldman and Cousins's unified interval for a normal mean
    bounded below (Phys. Rev. D 57, 1998), clipped at `high`. Far from `low` it is value -+ z stderr; near it,
    it turns into an upper limit smoothly, and covers `level` of the time at `low` itself, where a two-sided
    interval clipped at the bound never misses below and covers more.

    `stderr_at`: the standard error the estimate would have if the truth were mu, for an estimator whose spread
    depends on the truth. Each candidate mu is then tested with its own error (as a score interval is, rather than
    a Wald interval with the error at the estimate): the interval is {mu : value in acceptance(mu)}, and its ends
    move towards where the error is smaller. `stderr` is the error at the estimate (stderr_at(value))."""
    if not stderr > 0.0:
        clipped = min(max(value, low), high)
        return clipped, clipped
    one_sided, two_sided = _NORMAL.inv_cdf(level), _NORMAL.inv_cdf(0.5 + level / 2.0)
    error = stderr_at or (lambda mu: stderr)

    def region(mu: float) -> tuple[float, float]:
        """The acceptance region of mu in the estimate's units."""
        scale = error(mu)
        if not scale > 0.0:
            return mu, mu
        start, end = _acceptance((mu - low) / scale, level, one_sided, two_sided)
        return low + start * scale, low + end * scale

    # Both ends of the acceptance region rise with mu, so each end of the interval is one crossing (50 halvings:
    # to 1e-15 of the range; each may cost a pass over the data through `stderr_at`).
    lower = low if value <= region(low)[1] else _bisect(lambda mu: region(mu)[1] - value, low, value, 50)
    top = max(value, low) + 8.0 * stderr
    while region(top)[0] <= value and top < high:
        top = max(value, low) + 2.0 * (top - max(value, low))
    upper = _bisect(lambda mu: region(mu)[0] - value, low, top, 50)
    return min(lower, high), min(upper, high)
