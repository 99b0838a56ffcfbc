"""Interval and paired-test statistics the map and the A/B comparison share.

- Wilson score interval for a binomial proportion (Wilson 1927), the map's CI for 0/1 scores: unlike the
  normal interval it stays inside [0, 1] and is not degenerate at 0 or n successes, which matters for the
  small nodes a map has.
- Paired bootstrap: the two runs' scores are resampled together, one index draw per pair, so the CI of the
  difference keeps the correlation between the runs (the per-question difficulty they share).
- McNemar's exact test: under "no difference" the discordant pairs split 50/50 between the two directions,
  so p is the two-sided binomial tail of the smaller count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z95 = 1.959963984540054
DISCRETE_LEVELS = 16  # differences with at most this many distinct values resample through their counts


def is_binary(values: Sequence[float]) -> bool:
    # every value equal to 0.0 or 1.0 (as ==, so True, 1 and -0.0 count): a set test runs in C, 6x faster
    return {*values} <= _BINARY


_BINARY = {0.0, 1.0}


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, seed: int = 0,
                     resamples: int = 1000) -> tuple[float, float, float]:
    """(mean(b - a), 2.5th and 97.5th percentiles of the resampled mean difference)."""
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    n = diff.size
    if n == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    levels, counts = np.unique(diff, return_counts=True)
    if levels.size <= DISCRETE_LEVELS:
        # n draws with replacement from the pairs = multinomial counts over the distinct differences (the
        # same distribution, resample by resample), at O(levels) per resample instead of O(n)
        means = rng.multinomial(n, counts / n, size=resamples) @ levels / n
    else:
        means = np.empty(resamples)
        block = max(1, 2_000_000 // n)  # bounded memory for large n
        for start in range(0, resamples, block):
            stop = min(resamples, start + block)
            means[start:stop] = diff[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def mcnemar_exact(b_only: int, a_only: int) -> float:
    """Two-sided exact p for `b_only` pairs where only B succeeded against `a_only` where only A did."""
    discordant = b_only + a_only
    if discordant == 0:
        return 1.0
    smaller = min(b_only, a_only)
    # log-space binomial terms: exact for the thousands of discordant pairs a full benchmark can have
    log_half = discordant * math.log(0.5)
    tail = sum(math.exp(math.lgamma(discordant + 1) - math.lgamma(k + 1) - math.lgamma(discordant - k + 1)
                        + log_half) for k in range(smaller + 1))
    return min(1.0, 2.0 * tail)
