"""The corrected score: each row's reference noise as the references' sampling variance, and the score's algebra."""

import numpy as np
import pytest

from lmaudit.llmuse.kernels import _corrected_slope, _weights, solve_corrected, solve_weighted
from lmaudit.llmuse.matrix import from_rows
from lmaudit.llmuse.mle import MixtureProblem
from lmaudit.llmuse.simulate import sample_mixture, sample_sentences, word_model


def test_each_rows_noise_is_the_variance_its_log_ratio_has_over_fresh_references():
    """Draw the references again and again from known P and Q and hold the target: the spread of each target row's
    estimated log ratio is what `row_terms` says from a single draw's counts (twice the half-variance)."""
    rng = np.random.default_rng(8)
    model = word_model(300, seed=2, shift=0.5)
    target = from_rows(sample_mixture(rng, model, 150, 0.3))
    ratios, noises = [], []
    for _ in range(300):
        human, ai = (from_rows(sample_sentences(rng, pr, 4000)) for pr in (model.p, model.q))
        d, half_variance = MixtureProblem(human, ai, target).row_terms()
        ratios.append(d)
        noises.append(2.0 * half_variance)
    observed = np.var(ratios, axis=0, ddof=1)
    predicted = np.mean(noises, axis=0)
    assert 0.1 < predicted.mean() < 1.0  # noise large enough to matter (about V / n per corpus)
    assert np.median(observed / predicted) == pytest.approx(1.0, abs=0.1)
    assert np.corrcoef(observed, predicted)[0, 1] > 0.8  # rows with rarer words are noisier, as predicted
    # and from one draw's counts the prediction is close to the average prediction
    assert np.median(noises[0] / predicted) == pytest.approx(1.0, abs=0.1)


def _shifted_score(alpha, d, s, w):
    """The corrected score written out in numpy: g at each row's log ratio moved by -s t(alpha)."""
    b = 1.0 / (1.0 + np.exp(-d))
    a = 1.0 - b
    tilt = ((1 - alpha) * a - alpha * b) / ((1 - alpha) * a + alpha * b)
    moved = 1.0 / (1.0 + np.exp(-(d - s * tilt)))
    return float(np.sum(w * (2 * moved - 1) / ((1 - alpha) * (1 - moved) + alpha * moved)))


def test_the_corrected_score_has_its_root_where_solved_and_its_slope_is_its_derivative():
    rng = np.random.default_rng(3)
    is_ai = rng.random(2000) < 0.15
    d = rng.normal(np.where(is_ai, 1.5, -1.5), 1.2)
    s = rng.uniform(0.05, 0.4, d.size)
    w = rng.integers(1, 4, d.size).astype(np.float64)
    assert solve_corrected(d, np.zeros(d.size), w, 0.5, False) == pytest.approx(solve_weighted(d, w, 0.5, False),
                                                                                abs=1e-9)
    root = solve_corrected(d, s, w, 0.5, False)
    assert 0.0 < root < solve_weighted(d, w, 0.5, False)  # the noise had pushed the plain MLE up
    step = 1e-3
    assert _shifted_score(root - step, d, s, w) > 0 > _shifted_score(root + step, d, s, w)
    a, b = np.array([_weights(x) for x in d]).T
    for alpha in (0.05, root, 0.6):
        value, minus_slope = _corrected_slope(a, b, d, s, w, d.size, alpha)
        assert value == pytest.approx(_shifted_score(alpha, d, s, w), rel=1e-9)
        numeric = (_shifted_score(alpha + 1e-6, d, s, w) - _shifted_score(alpha - 1e-6, d, s, w)) / 2e-6
        assert -minus_slope == pytest.approx(numeric, rel=1e-5)


def test_at_a_share_of_zero_the_correction_is_the_lognormal_mean():
    """With all rows human the score at 0 is sum (R_i e^-s_i - 1): the estimated ratio R_i's lognormal excess
    e^{s_i} taken out exactly, so a corpus whose estimated ratios average e^{s} is at the bound, not above it."""
    rng = np.random.default_rng(4)
    s = np.full(4000, 0.3)
    d = rng.normal(-1.0, 0.5, s.size)
    d += np.log(1.0 / np.mean(np.exp(d))) + s  # exactly: mean of exp(d - s) is 1
    w = np.ones(d.size)
    assert solve_weighted(d, w, 0.5, False) > 0.05
    assert solve_corrected(d, s, w, 0.5, True) == pytest.approx(0.0, abs=1e-6)
