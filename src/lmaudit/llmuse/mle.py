"""The mixture MLE of the share of AI-modified sentences, with intervals that count the references' noise.

Model (Liang et al. 2024): a sentence is the set of vocabulary words it contains; under human text P word w occurs
independently with probability p_w, under AI-modified text Q with q_w. A target sentence x has

    log Q(x) - log P(x) = sum_{w in x} (logit q_w - logit p_w) + sum_w (log(1 - q_w) - log(1 - p_w))

and the target corpus is a mixture (1 - alpha) P + alpha Q. p and q are shares of reference sentences containing
w (with `smoothing` added to each count, so a resample never puts a word at probability 0 or 1); alpha is the
exact maximiser of the concave log-likelihood (`kernels`).

p and q are estimates from finite corpora, and their noise pushes the MLE towards the middle (a mixture of two
noisy distributions fits the target better than either): by 1.5-2 points in the issue's setting. The share we
report solves the corrected score instead (`kernels`): each row's score term taken at its log ratio moved by the
noise that the references' counts give it, which takes out the lift that noise gives the term's mean. It needs
no resampling and is centred on the truth at every share, 0 included (bench/llmuse.py), where a bootstrap bias
correction was not: a resampled world is centred on the data's MLE, so its estimate of the bias was the bias
beside the MLE, too large at 0 and too small above it. Both are extended past the bounds (the Newton step from
the bound where the root is past it), so that at a share of 0 the estimate may fall below 0 as often as above.

The interval is Feldman and Cousins's for a normal mean bounded below by 0, around the corrected (unclipped)
share: the shares mu at which the estimate is within 1.96 of mu's own standard errors away from 0, an upper limit
near it. mu's error is the error at the estimate times the square root of the corrected score's information at
the estimate over that at mu (`stderr_scale`): near 0 the information falls by half within half a point, and with the error
at the estimate for every mu the interval kept 0 in 99% of simulated corpora whose share was 0.
The standard error's variance at the estimate has two parts.
(1) The target: its bootstrap (rows resampled, p and q held) of the corrected share. The share to estimate is
that of this corpus, a fixed number of its sentences; resampling with replacement draws that number
binomially, which adds alpha (1 - alpha) / n (to first order, exactly: the MLE's variance under iid sampling is
1 / (n I) and under a fixed composition 1 / (n I) - alpha (1 - alpha) / n), so that term is taken out.
(2) The references, by the delta method (`reference_variance`): the score's gradient with respect to each
word's share in each reference, its variance over that reference's own sentences (co-occurring words count
together), less the diagonal part, each row's own noise (sum_i w_i (dpsi_i/dd_i)^2 2 s_i): the rows the target's
bootstrap resamples carry their noise with them, so it counted that part already. What is left is the noise all
rows share, which no resampling of the target can see. Resampling the references instead (held target) counts
both parts and does so at the MLE's world, not the estimate's (a resampled reference's corrected share is centred
on the data's MLE): at share 0 it gave 0.38 points where the delta method's whole gave 0.29 and its shared part
0.15, with the estimates' spread 0.48 and the target's part 0.49 (40 corpora).

Every bootstrap resample of the references chooses its vocabulary again by the minimum counts, as the data's was
chosen (`MixtureProblem`). Beside the interval: the joint bootstrap's percentile interval of the corrected share
(references and target resampled together; twice the references' noise per replicate, so wider), the
target-only percentile interval of the MLE and its midpoint (what the anchor reports), and the profile-likelihood
interval given p and q.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.core.stats import bounded_normal_interval
from lmaudit.llmuse.kernels import (bootstrap_joint, bootstrap_target, log_likelihoods, score_sensitivities,
                                    solve_corrected, word_weights)
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
    alpha: float  # the corrected-score share (the estimate to report)
    mle: float  # the plug-in maximum-likelihood estimate
    bias: float  # estimated bias of the MLE: the MLE minus the corrected share (both extended past the bounds)
    ci: Interval  # Feldman-Cousins interval around the corrected share, each mu tested with its own stderr
    ci_percentile: Interval  # joint bootstrap (references and target) percentile interval of the corrected share
    ci_target_only: Interval  # resampling the target only, percentile (the anchor's interval)
    ci_profile: Interval  # profile likelihood given p and q (target noise under the model only)
    anchor: float  # midpoint of the target-only interval: the number the anchor reports
    stderr: float  # of the corrected share: variances of the target (fixed composition) and of the references
    stderr_target_only: float  # of the target-only replicates (the anchor's)
    reference_share: float  # share of stderr^2 that comes from the finite references
    n_target: int
    n_human: int
    n_ai: int
    vocabulary_size: int
    resamples: int

    def to_dict(self) -> dict:
        return asdict(self)


def word_logits(counts: np.ndarray, n: float, smoothing: float = SMOOTHING) -> np.ndarray:
    """logit p of smoothed occurrence shares; counts may be (V,) or (resamples, V)."""
    p = (counts + smoothing) / (n + 2.0 * smoothing)
    return np.log(p) - np.log1p(-p)


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
        return self._counts[2]

    # The corpora are fixed, so the counts and the rows' terms are computed once per problem (every estimate,
    # bootstrap and interval reads them). Callers must not write into the arrays.
    @cached_property
    def _counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Human and AI sentences containing each candidate word, and which words the minimum counts keep."""
        human, ai = self.human.word_counts(), self.ai.word_counts()
        return human, ai, (human >= self.min_human) & (ai >= self.min_ai)

    @cached_property
    def _row_terms(self) -> tuple[np.ndarray, np.ndarray]:
        human, ai, _ = self._counts
        ratios, noise, offset, absent = word_weights(human, float(self.human.n), ai, float(self.ai.n),
                                                     self.smoothing, float(self.min_human), float(self.min_ai))
        rows = self.target.rows  # a word outside the vocabulary weighs nothing in either
        return np.asarray(rows @ ratios).ravel() + offset, np.asarray(rows @ noise).ravel() + absent

    def row_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """Per distinct target row, with p and q from the full references: log Q(x) - log P(x), and half the
        variance that the references' sampling noise gives it (`kernels`)."""
        return self._row_terms

    def log_ratios(self) -> np.ndarray:
        """log Q(x) - log P(x) of each distinct target row, with p and q from the full references."""
        return self.row_terms()[0]

    def mle(self, *, extended: bool = False, corrected: bool = False) -> float:
        """The MLE in [0, 1] (the corrected-score estimate when `corrected`); `extended`: below 0 (above 1) by
        the Newton step from the bound it sits at."""
        d, noise = self.row_terms()
        return float(solve_corrected(d, noise, self.target.counts.astype(np.float64), 0.5, extended, corrected))

    def reference_variance(self, estimate: float) -> float:
        """The variance the references' sampling adds to the corrected share `estimate` (extended) that the
        target's bootstrap does not already count (module docstring): the delta method over the reference
        sentences themselves (the infinitesimal jackknife, so words that co-occur count as they do), less its
        diagonal, each target row's own noise."""
        d, half_variance = self.row_terms()
        w = self.target.counts.astype(np.float64)
        slopes, information = score_sensitivities(d, half_variance, w, estimate)
        human, ai, kept = self._counts
        pulled = np.asarray(self.target.rows.T @ (w * slopes)).ravel()  # per word: sum over rows holding it
        total = float(w @ slopes)
        variance = 0.0
        for counts, corpus, sign in ((human, self.human, -1.0), (ai, self.ai, 1.0)):
            share = (counts + self.smoothing) / (corpus.n + 2.0 * self.smoothing)
            # d(score) / d(share of sentences holding w): present in a row, log share; absent, log(1 - share)
            gradient = np.where(kept, sign * (pulled / (share * (1.0 - share)) - total / (1.0 - share)), 0.0)
            per_sentence = np.asarray(corpus.rows @ gradient).ravel()
            mean = corpus.counts @ per_sentence / corpus.n
            variance += (corpus.counts @ (per_sentence - mean) ** 2) / corpus.n**2
        own = float(w @ (slopes**2 * 2.0 * half_variance))
        return max(variance - own, 0.0) / information**2

    def stderr_scale(self, alpha: float, stderr: float) -> Callable[[float], float]:
        """The standard error the corrected share would have at a true share mu, from `stderr` at `alpha` (in
        [0, 1]): scaled as the inverse square root of the corrected score's information at mu, these rows' own
        (what a test of mu assumes: that they were drawn at mu; the estimate's variance there is 1 / (n I(mu))).
        Near 0 the information changes fast (the few most AI-like human sentences dominate it at 0 and weigh less
        at half a point), so a share tested with the error at the estimate is accepted too often."""
        d, half_variance = self.row_terms()
        w = self.target.counts.astype(np.float64)
        at_estimate = score_sensitivities(d, half_variance, w, alpha)[1]

        def error(mu: float) -> float:
            information = score_sensitivities(d, half_variance, w, min(max(mu, 0.0), 1.0))[1]
            if not (information > 0.0 and at_estimate > 0.0):
                return stderr
            return stderr * (at_estimate / information) ** 0.5

        return error

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
                  start: float = 0.5, extended: bool = False, corrected: bool = False) -> np.ndarray:
        """Estimates (`mle`, corrected or not) of `resamples` resamples of the target and/or of both reference
        corpora (the rest held fixed), extended past the bounds when asked."""
        if not (references or target):
            raise ConfigError("a bootstrap must resample the references, the target or both")
        seed = int(rng.integers(0, 2**63))
        t = self.target
        if not references:
            return bootstrap_target(*self.row_terms(), t.owners, seed, resamples, start, extended, corrected)
        h, q = self.human, self.ai
        return bootstrap_joint(t.rows.indptr, t.rows.indices, t.owners, h.rows.indptr, h.rows.indices, h.owners,
                               q.rows.indptr, q.rows.indices, q.owners, t.width, self.smoothing,
                               float(self.min_human), float(self.min_ai), seed, resamples,
                               start, target, extended, corrected)


def _clip(x: float) -> float:
    """A share lies in [0, 1]."""
    return float(min(1.0, max(0.0, x)))


def estimate(problem: MixtureProblem, *, resamples: int = 1000, seed: int = 0) -> MixtureEstimate:
    """The MLE, the corrected-score share and the intervals, with the references' share of the variance."""
    if resamples < 20:
        raise ConfigError(f"resamples must be at least 20 for a 95% interval, got {resamples}")
    joint_rng, anchor_rng, target_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    # The interval works on the share extended past 0 (module docstring): it is centred on the truth at 0 only
    # if it may fall below it.
    mle_extended = problem.mle(extended=True)
    corrected = problem.mle(extended=True, corrected=True)
    alpha_hat, alpha = _clip(mle_extended), _clip(corrected)
    joint = problem.bootstrap(resamples, joint_rng, references=True, start=alpha, extended=True, corrected=True)
    anchor_only = problem.bootstrap(resamples, anchor_rng, references=False, start=alpha_hat)
    target_only = problem.bootstrap(resamples, target_rng, references=False, start=alpha, extended=True,
                                    corrected=True)
    n = problem.target.n
    var_target = max(float(target_only.var(ddof=1)) - alpha * (1.0 - alpha) / n, 0.0)  # fixed composition
    var_references = problem.reference_variance(corrected)
    stderr = (var_target + var_references) ** 0.5
    low, high = np.percentile(np.clip(joint, 0.0, 1.0), [2.5, 97.5])
    t_low, t_high = np.percentile(anchor_only, [2.5, 97.5])  # the anchor's MLEs, in [0, 1]
    return MixtureEstimate(
        alpha=alpha, mle=alpha_hat, bias=mle_extended - corrected,
        ci=Interval(*bounded_normal_interval(corrected, stderr, stderr_at=problem.stderr_scale(alpha, stderr))),
        ci_percentile=Interval(float(low), float(high)), ci_target_only=Interval(float(t_low), float(t_high)),
        ci_profile=problem.profile_interval(alpha_hat), anchor=float((t_low + t_high) / 2),
        stderr=stderr, stderr_target_only=float(anchor_only.std(ddof=1)),
        reference_share=var_references / stderr**2 if stderr > 0 else 0.0,
        n_target=n, n_human=problem.human.n, n_ai=problem.ai.n,
        vocabulary_size=int(problem.vocabulary().sum()), resamples=resamples)
