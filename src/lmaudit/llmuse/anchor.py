"""The anchor's estimator, re-implemented from its description, for comparison and for the speed benchmark.

As Liang et al. describe and release it: p and q are raw shares (count / sentences, no smoothing) over words in
at least 5 human and 3 AI sentences; each target sentence gets dense log P and log Q; then, for every bootstrap
resample of the target sentences only, a general-purpose bounded optimiser (L-BFGS-B from alpha = 0.5) minimises
the mean negative mixture log-likelihood. The reported estimate is the midpoint of the 2.5% and 97.5% percentiles
of the resampled alphas, with half their distance as the margin. The references are never resampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from lmaudit.llmuse.matrix import SentenceMatrix


@dataclass(frozen=True)
class AnchorEstimate:
    estimate: float  # midpoint of the percentile interval
    half_width: float
    low: float
    high: float
    alphas: np.ndarray


def anchor_log_probabilities(human: SentenceMatrix, ai: SentenceMatrix,
                             target: SentenceMatrix) -> tuple[np.ndarray, np.ndarray]:
    """Dense log P(x) and log Q(x) of every target sentence (in corpus order), from unsmoothed shares."""
    out = []
    for ref in (human, ai):
        share = ref.word_counts() / ref.n
        with np.errstate(divide="ignore"):
            log_in, log_out = np.log(share), np.log1p(-share)
        per_row = np.asarray(target.rows @ (log_in - log_out)).ravel() + log_out.sum()
        out.append(per_row[target.owners])
    return out[0], out[1]


def _negative_mean_log_likelihood(alpha: np.ndarray, log_p: np.ndarray, log_q: np.ndarray) -> float:
    return -float(np.mean(np.log((1.0 - alpha[0]) + alpha[0] * np.exp(log_q - log_p))))


def anchor_bootstrap(log_p: np.ndarray, log_q: np.ndarray, *, resamples: int = 1000,
                     seed: int = 0) -> AnchorEstimate:
    """One optimiser run per resample of the target, over dense arrays, as the anchor does."""
    rng = np.random.default_rng(seed)
    n = log_p.size
    alphas = []
    for _ in range(resamples):
        chosen = rng.choice(n, size=n, replace=True)
        fit = minimize(_negative_mean_log_likelihood, x0=[0.5], args=(log_p[chosen], log_q[chosen]),
                       method="L-BFGS-B", bounds=[(0.0, 1.0)])
        if fit.success:
            alphas.append(float(fit.x[0]))
    values = np.array(alphas)
    low, high = np.percentile(values, [2.5, 97.5])
    return AnchorEstimate(float((low + high) / 2), float((high - low) / 2), float(low), float(high), values)
