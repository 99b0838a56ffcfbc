"""The mixture MLE of the share of AI-modified sentences, with intervals that count the references' noise.

Model (Liang et al. 2024): a sentence is the set of vocabulary words it contains; under human text P word w occurs
independently with probability p_w, under AI-modified text Q with q_w. A target sentence x has

    log Q(x) - log P(x) = sum_{w in x} (logit q_w - logit p_w) + sum_w (log(1 - q_w) - log(1 - p_w))

and the target corpus is a mixture (1 - alpha) P + alpha Q. p and q are shares of reference sentences containing
w (with `smoothing` added to each count, so a resample never puts a word at probability 0 or 1); alpha is the
exact maximiser of the concave log-likelihood (`kernels`).

p and q are estimates from finite corpora, and their noise pushes alpha towards the middle (a mixture of two noisy
distributions fits the target better than either). The joint bootstrap resamples the human references, the AI
references and the target together; the shift of its replicates' mean above the MLE estimates that bias, which
is subtracted (bootstrap bias correction; a replicate carries about twice the reference noise of the MLE, so the
shift is about the bias itself).

The interval is the corrected share +- 1.96 standard errors, the variance split into its two independent sources,
each bootstrapped around the estimate: the references (resampled, target held) and the target (resampled, p and
q held). Two things make the joint replicates' own spread too wide for it. (1) A replicate evaluates the target's
noise at the doubled reference noise of its resampled p and q, where the MLE is more variable (in the setting
of bench/llmuse.py at share 0, a target-only spread of 0.58 points with p and q, 0.65 with resampled ones); there
the joint spread was 0.75 points against 0.63 for the estimates, which the two separate parts (0.52 and 0.35)
match. (2) The share to estimate is that of this corpus: a fixed number of its
sentences. Resampling the target with replacement draws that number binomially, which adds alpha (1 - alpha) / n
to the target's variance (to first order, exactly: the MLE's variance under iid sampling is 1 / (n I) and under a
fixed composition 1 / (n I) - alpha (1 - alpha) / n), so that term is taken out. The Monte Carlo error of the
estimated bias (the joint variance over the number of resamples) is added. Beside it: the joint percentile
interval, the target-only percentile interval and its midpoint (what the anchor reports), and the
profile-likelihood interval given p and q.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.llmuse.kernels import bootstrap_joint, bootstrap_target, log_likelihoods, solve_weighted
from lmaudit.llmuse.matrix import SentenceMatrix

SMOOTHING = 0.5
CHI2_95 = 3.841458820694124  # 95% quantile of chi-square with one degree of freedom
Z95 = 1.959963984540054  # 97.5% quantile of the standard normal


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
    ci: Interval  # corrected share +- 1.96 stderr (clipped to [0, 1])
    ci_percentile: Interval  # joint bootstrap percentile interval (not corrected)
    ci_target_only: Interval  # resampling the target only, percentile (the anchor's interval)
    ci_profile: Interval  # profile likelihood given p and q (target noise under the model only)
    anchor: float  # midpoint of the target-only interval: the number the anchor reports
    stderr: float  # of the corrected share: variances of the references, the target (fixed composition), the bias
    stderr_target_only: float  # of the target-only replicates (the anchor's)
    reference_share: float  # share of stderr^2 that comes from the finite references
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

    def bootstrap(self, resamples: int, rng: np.random.Generator, *, references: bool, target: bool = True,
                  start: float = 0.5) -> np.ndarray:
        """MLEs of `resamples` resamples of the target and/or of both reference corpora (the rest held fixed)."""
        if not (references or target):
            raise ConfigError("a bootstrap must resample the references, the target or both")
        seed = int(rng.integers(0, 2**63))
        t = self.target
        if not references:
            return bootstrap_target(self.log_ratios(), t.owners, seed, resamples, start)
        h, q = self.human, self.ai
        return bootstrap_joint(t.rows.indptr, t.rows.indices, t.owners, h.rows.indptr, h.rows.indices, h.owners,
                               q.rows.indptr, q.rows.indices, q.owners, t.width, self.smoothing, seed, resamples,
                               start, target)


def _clip(x: float) -> float:
    """A share lies in [0, 1]."""
    return float(min(1.0, max(0.0, x)))


def estimate(problem: MixtureProblem, *, resamples: int = 1000, seed: int = 0) -> MixtureEstimate:
    """The MLE, its bias correction and the intervals, with the references' share of the variance."""
    if resamples < 20:
        raise ConfigError(f"resamples must be at least 20 for a 95% interval, got {resamples}")
    joint_rng, target_rng, reference_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    alpha_hat = problem.mle()
    joint = problem.bootstrap(resamples, joint_rng, references=True, start=alpha_hat)
    target_only = problem.bootstrap(resamples, target_rng, references=False, start=alpha_hat)
    references_only = problem.bootstrap(resamples, reference_rng, references=True, target=False, start=alpha_hat)
    bias = float(joint.mean() - alpha_hat)
    alpha = _clip(alpha_hat - bias)
    n = problem.target.n
    var_target_only = float(target_only.var(ddof=1))
    var_target = max(var_target_only - alpha * (1.0 - alpha) / n, 0.0)  # fixed composition
    var_references = float(references_only.var(ddof=1))
    var_bias = float(joint.var(ddof=1)) / resamples  # Monte Carlo error of the estimated bias
    stderr = (var_target + var_references + var_bias) ** 0.5
    low, high = np.percentile(joint, [2.5, 97.5])
    t_low, t_high = np.percentile(target_only, [2.5, 97.5])
    return MixtureEstimate(
        alpha=alpha, mle=alpha_hat, bias=bias, ci=Interval(_clip(alpha - Z95 * stderr), _clip(alpha + Z95 * stderr)),
        ci_percentile=Interval(float(low), float(high)), ci_target_only=Interval(float(t_low), float(t_high)),
        ci_profile=problem.profile_interval(alpha_hat), anchor=float((t_low + t_high) / 2),
        stderr=stderr, stderr_target_only=var_target_only ** 0.5,
        reference_share=var_references / stderr**2 if stderr > 0 else 0.0,
        n_target=n, n_human=problem.human.n, n_ai=problem.ai.n,
        vocabulary_size=problem.target.width, resamples=resamples)
