"""The mixture MLE of the share of AI-modified sentences, with intervals that count the references' noise.

Model (Liang et al. 2024): a sentence is the set of vocabulary words it contains; under human text P word w occurs
independently with probability p_w, under AI-modified text Q with q_w. A target sentence x has

    log Q(x) - log P(x) = sum_{w in x} (logit q_w - logit p_w) + sum_w (log(1 - q_w) - log(1 - p_w))

and the target corpus is a mixture (1 - alpha) P + alpha Q. p and q are shares of reference sentences containing
w (with `smoothing` added to each count, so a resample never puts a word at probability 0 or 1); alpha is the
exact maximiser of the concave log-likelihood (`kernels`).

p and q are estimates from finite corpora, and their noise pushes alpha towards the middle (a mixture of two noisy
distributions fits the target better than either). The joint bootstrap resamples the human references, the AI
references and the target together; the spread of its replicates is the honest uncertainty, and the shift of
their mean above the MLE estimates that bias, which is subtracted (bootstrap bias correction; the replicates
carry about twice the reference noise of the MLE, so the shift is about the bias itself). The reported interval
is the replicates' 2.5-97.5% percentile interval moved down by twice that shift, so it sits around the corrected
estimate. (The basic interval, 2 alpha_hat minus the quantiles, is the same for a symmetric spread but collapses
to [0, 0] whenever the MLE is 0; the moved percentile interval keeps its upper end.) Beside it: the target-only
percentile interval and its midpoint (what the anchor reports), and the profile-likelihood interval given p and q.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.llmuse.kernels import bootstrap_joint, bootstrap_target, log_likelihoods, solve_weighted
from lmaudit.llmuse.matrix import SentenceMatrix

SMOOTHING = 0.5
CHI2_95 = 3.841458820694124  # 95% quantile of chi-square with one degree of freedom


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def covers(self, value: float) -> bool:
        return self.low - 1e-12 <= value <= self.high + 1e-12

    @property
    def width(self) -> float:
        return self.high - self.low


@dataclass(frozen=True)
class MixtureEstimate:
    alpha: float  # the bias-corrected share (the estimate to report)
    mle: float  # the plug-in maximum-likelihood estimate
    bias: float  # estimated bias of the MLE: mean of the joint replicates minus the MLE
    ci: Interval  # joint bootstrap percentile interval moved by twice the bias: centred on the corrected share
    ci_percentile: Interval  # joint bootstrap percentile interval (not corrected)
    ci_target_only: Interval  # resampling the target only, percentile (the anchor's interval)
    ci_profile: Interval  # profile likelihood given p and q (target noise under the model only)
    anchor: float  # midpoint of the target-only interval: the number the anchor reports
    stderr: float  # standard deviation of the joint replicates
    stderr_target_only: float
    reference_share: float  # share of the joint variance that comes from the finite references
    n_target: int
    n_human: int
    n_ai: int
    vocabulary_size: int
    resamples: int

    def to_dict(self) -> dict:
        return asdict(self)


def word_logits(counts: np.ndarray, n: float, smoothing: float = SMOOTHING) -> tuple[np.ndarray, np.ndarray]:
    """(logit p, log(1 - p)) of smoothed occurrence shares; counts may be (V,) or (resamples, V)."""
    p = (counts + smoothing) / (n + 2.0 * smoothing)
    return np.log(p) - np.log1p(-p), np.log1p(-p)


def log_ratio_weights(human_counts: np.ndarray, n_human: float, ai_counts: np.ndarray, n_ai: float,
                      smoothing: float = SMOOTHING) -> tuple[np.ndarray, np.ndarray]:
    """Per word, logit q - logit p; and the constant sum_w log(1 - q_w) - log(1 - p_w). Shapes (.., V) and (..)."""
    logit_p, rest_p = word_logits(human_counts, n_human, smoothing)
    logit_q, rest_q = word_logits(ai_counts, n_ai, smoothing)
    return logit_q - logit_p, (rest_q - rest_p).sum(axis=-1)


@dataclass(frozen=True)
class MixtureProblem:
    """Human (P) and AI (Q) reference sentences and the target, all over the same vocabulary."""

    human: SentenceMatrix
    ai: SentenceMatrix
    target: SentenceMatrix
    smoothing: float = SMOOTHING

    def __post_init__(self) -> None:
        widths = {self.human.width, self.ai.width, self.target.width}
        if len(widths) != 1:
            raise ConfigError(f"the three corpora have different vocabularies (widths {sorted(widths)})")
        if widths == {0}:
            raise DataError("no vocabulary left: no word passes the minimum counts in both reference corpora")
        for name, matrix in (("human reference", self.human), ("AI reference", self.ai), ("target", self.target)):
            if matrix.n == 0:
                raise DataError(f"the {name} has no sentences")

    def log_ratios(self) -> np.ndarray:
        """log Q(x) - log P(x) of each distinct target row, with p and q from the full references."""
        delta, offset = log_ratio_weights(self.human.word_counts(), self.human.n, self.ai.word_counts(), self.ai.n,
                                          self.smoothing)
        return np.asarray(self.target.rows @ delta).ravel() + offset

    def mle(self) -> float:
        return float(solve_weighted(self.log_ratios(), self.target.counts.astype(np.float64), 0.5))

    def profile_interval(self, alpha_hat: float, level_chi2: float = CHI2_95) -> Interval:
        """{alpha : 2 (l(alpha_hat) - l(alpha)) <= chi2} by bisection on each side (l is concave)."""
        d, w = self.log_ratios(), self.target.counts.astype(np.float64)
        top = log_likelihoods(d, w, np.array([alpha_hat]))[0] - level_chi2 / 2.0

        def edge(inside: float, outside: float) -> float:
            if log_likelihoods(d, w, np.array([outside]))[0] >= top:
                return outside
            for _ in range(60):
                middle = 0.5 * (inside + outside)
                if log_likelihoods(d, w, np.array([middle]))[0] >= top:
                    inside = middle
                else:
                    outside = middle
            return 0.5 * (inside + outside)

        return Interval(edge(alpha_hat, 0.0), edge(alpha_hat, 1.0))

    def bootstrap(self, resamples: int, rng: np.random.Generator, *, references: bool,
                  start: float = 0.5) -> np.ndarray:
        """MLEs of `resamples` resamples of the target, and of both reference corpora too when `references`."""
        seed = int(rng.integers(0, 2**63))
        t = self.target
        if not references:
            return bootstrap_target(self.log_ratios(), t.owners, seed, resamples, start)
        h, q = self.human, self.ai
        return bootstrap_joint(t.rows.indptr, t.rows.indices, t.owners, h.rows.indptr, h.rows.indices, h.owners,
                               q.rows.indptr, q.rows.indices, q.owners, t.width, self.smoothing, seed, resamples,
                               start)


def _clip(x: float) -> float:
    """A share lies in [0, 1]."""
    return float(min(1.0, max(0.0, x)))


def estimate(problem: MixtureProblem, *, resamples: int = 1000, seed: int = 0) -> MixtureEstimate:
    """The MLE, its bias correction and the three intervals, with the references' share of the variance."""
    if resamples < 20:
        raise ConfigError(f"resamples must be at least 20 for a 95% interval, got {resamples}")
    joint_rng, target_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    alpha_hat = problem.mle()
    joint = problem.bootstrap(resamples, joint_rng, references=True, start=alpha_hat)
    target_only = problem.bootstrap(resamples, target_rng, references=False, start=alpha_hat)
    bias = float(joint.mean() - alpha_hat)
    low, high = np.percentile(joint, [2.5, 97.5])
    t_low, t_high = np.percentile(target_only, [2.5, 97.5])
    var_joint, var_target = float(joint.var(ddof=1)), float(target_only.var(ddof=1))
    return MixtureEstimate(
        alpha=_clip(alpha_hat - bias), mle=alpha_hat, bias=bias,
        ci=Interval(_clip(low - 2 * bias), _clip(high - 2 * bias)),
        ci_percentile=Interval(float(low), float(high)), ci_target_only=Interval(float(t_low), float(t_high)),
        ci_profile=problem.profile_interval(alpha_hat), anchor=float((t_low + t_high) / 2),
        stderr=var_joint ** 0.5, stderr_target_only=var_target ** 0.5,
        reference_share=_clip(1.0 - var_target / var_joint) if var_joint > 0 else 0.0,
        n_target=problem.target.n, n_human=problem.human.n, n_ai=problem.ai.n,
        vocabulary_size=problem.target.width, resamples=resamples)
