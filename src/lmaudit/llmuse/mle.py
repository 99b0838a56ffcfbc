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
shift is about the bias itself). Every resample chooses its vocabulary again by the minimum counts, as the data's
was chosen (`MixtureProblem`). The correction works on the MLE extended past the bounds (the Newton step from the
bound where the maximum sits there), since replicates clipped at 0 pile up and their mean stops being linear in
the noise.

The interval is Feldman and Cousins's for a normal mean bounded below by 0, around the corrected (unclipped)
share with its standard error: the corrected share +- 1.96 standard errors away from 0, an upper limit near it.
The standard error's variance is split into its two independent sources,
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
from lmaudit.core.stats import bounded_normal_interval
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
    ci: Interval  # Feldman-Cousins interval around the corrected share (+- 1.96 stderr away from 0)
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
    """Human (P) and AI (Q) reference sentences and the target over the same candidate words. The vocabulary is
    the candidates in at least `min_human` human and `min_ai` AI reference sentences: chosen here from the data,
    and chosen again in every bootstrap resample, since the choice is part of the estimator (words kept because
    their sampled counts came out high carry that luck into p and q; a bootstrap that held the data's vocabulary
    would not see it, and over-corrects the bias it estimates). Candidates should include every word that a
    resample could keep: those in at least one sentence of each reference."""

    human: SentenceMatrix
    ai: SentenceMatrix
    target: SentenceMatrix
    smoothing: float = SMOOTHING
    min_human: int = 0
    min_ai: int = 0

    def __post_init__(self) -> None:
        widths = {self.human.width, self.ai.width, self.target.width}
        if len(widths) != 1:
            raise ConfigError(f"the three corpora have different vocabularies (widths {sorted(widths)})")
        for name, matrix in (("human reference", self.human), ("AI reference", self.ai), ("target", self.target)):
            if matrix.n == 0:
                raise DataError(f"the {name} has no sentences")
        if not self.vocabulary().any():
            raise DataError("no vocabulary left: no word passes the minimum counts in both reference corpora")

    def vocabulary(self) -> np.ndarray:
        """Which candidate words are in the vocabulary (boolean, per column)."""
        return self._counts()[2]

    def _counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Human and AI sentences containing each candidate word, and which words the minimum counts keep."""
        human, ai = self.human.word_counts(), self.ai.word_counts()
        return human, ai, (human >= self.min_human) & (ai >= self.min_ai)

    def log_ratios(self) -> np.ndarray:
        """log Q(x) - log P(x) of each distinct target row, with p and q from the full references."""
        human, ai, kept = self._counts()
        delta, offset = log_ratio_weights(human[kept], self.human.n, ai[kept], self.ai.n, self.smoothing)
        weights = np.zeros(kept.size)
        weights[kept] = delta  # a word outside the vocabulary weighs nothing
        return np.asarray(self.target.rows @ weights).ravel() + offset

    def mle(self, *, extended: bool = False) -> float:
        """The MLE in [0, 1]; `extended`: below 0 (above 1) by the Newton step from the bound it sits at."""
        return float(solve_weighted(self.log_ratios(), self.target.counts.astype(np.float64), 0.5, extended))

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
                  start: float = 0.5, extended: bool = False) -> np.ndarray:
        """MLEs of `resamples` resamples of the target and/or of both reference corpora (the rest held fixed),
        extended past the bounds when asked (`mle`)."""
        if not (references or target):
            raise ConfigError("a bootstrap must resample the references, the target or both")
        seed = int(rng.integers(0, 2**63))
        t = self.target
        if not references:
            return bootstrap_target(self.log_ratios(), t.owners, seed, resamples, start, extended)
        h, q = self.human, self.ai
        return bootstrap_joint(t.rows.indptr, t.rows.indices, t.owners, h.rows.indptr, h.rows.indices, h.owners,
                               q.rows.indptr, q.rows.indices, q.owners, t.width, self.smoothing,
                               float(self.min_human), float(self.min_ai), seed, resamples,
                               start, target, extended)


def _clip(x: float) -> float:
    """A share lies in [0, 1]."""
    return float(min(1.0, max(0.0, x)))


def estimate(problem: MixtureProblem, *, resamples: int = 1000, seed: int = 0) -> MixtureEstimate:
    """The MLE, its bias correction and the intervals, with the references' share of the variance."""
    if resamples < 20:
        raise ConfigError(f"resamples must be at least 20 for a 95% interval, got {resamples}")
    joint_rng, target_rng, reference_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    # The correction and the interval work on the MLE extended past 0 (module docstring): clipped replicates pile
    # up at 0, and their mean then grows like the square root of the noise, not linearly, near a share of 0.
    extended = problem.mle(extended=True)
    alpha_hat = _clip(extended)
    start = alpha_hat
    joint = problem.bootstrap(resamples, joint_rng, references=True, start=start, extended=True)
    target_only = problem.bootstrap(resamples, target_rng, references=False, start=start, extended=True)
    references_only = problem.bootstrap(resamples, reference_rng, references=True, target=False, start=start,
                                        extended=True)
    bias = float(joint.mean() - extended)
    corrected = extended - bias
    alpha = _clip(corrected)
    n = problem.target.n
    var_target_only = float(target_only.var(ddof=1))
    var_target = max(var_target_only - alpha * (1.0 - alpha) / n, 0.0)  # fixed composition
    var_references = float(references_only.var(ddof=1))
    var_bias = float(joint.var(ddof=1)) / resamples  # Monte Carlo error of the estimated bias
    stderr = (var_target + var_references + var_bias) ** 0.5
    low, high = np.percentile(np.clip(joint, 0.0, 1.0), [2.5, 97.5])
    t_low, t_high = np.percentile(np.clip(target_only, 0.0, 1.0), [2.5, 97.5])  # the anchor's MLEs, in [0, 1]
    return MixtureEstimate(
        alpha=alpha, mle=alpha_hat, bias=bias, ci=Interval(*bounded_normal_interval(corrected, stderr)),
        ci_percentile=Interval(float(low), float(high)), ci_target_only=Interval(float(t_low), float(t_high)),
        ci_profile=problem.profile_interval(alpha_hat), anchor=float((t_low + t_high) / 2),
        stderr=stderr, stderr_target_only=float(np.clip(target_only, 0.0, 1.0).std(ddof=1)),
        reference_share=var_references / stderr**2 if stderr > 0 else 0.0,
        n_target=n, n_human=problem.human.n, n_ai=problem.ai.n,
        vocabulary_size=int(problem.vocabulary().sum()), resamples=resamples)
