import math
from statistics import NormalDist

import numpy as np
import pytest

from lmaudit.core.errors import UnknownNameError
from lmaudit.core.stats import bounded_normal_interval, summarize
from lmaudit.core.types import (
    Generation,
    GenerateRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Message,
    request_from_dict,
    request_key,
    response_from_dict,
    to_dict,
)


def test_request_round_trip_and_stable_key():
    chat = GenerateRequest(messages=(Message("user", "hi"),), max_tokens=5, temperature=0.7, seed=3, stop=("\n",))
    plain = LoglikelihoodRequest("Question?", " A")
    for request in (chat, plain):
        assert request_from_dict(to_dict(request)) == request
    assert request_key(plain) == request_key(LoglikelihoodRequest("Question?", " A"))
    assert request_key(plain) != request_key(LoglikelihoodRequest("Question?", " B"))
    assert request_key(chat) != request_key(GenerateRequest(messages=(Message("user", "hi"),), max_tokens=5,
                                                            temperature=0.7, seed=4, stop=("\n",)))


def test_response_round_trip():
    for response in (LoglikelihoodResult(-1.5, True, 2), Generation("text", "stop", (-0.1, -0.2))):
        assert response_from_dict(to_dict(response)) == response


def test_generate_request_needs_exactly_one_input():
    with pytest.raises(ValueError):
        GenerateRequest()
    with pytest.raises(ValueError):
        GenerateRequest(prompt="a", messages=(Message("user", "b"),))


def test_summarize_mean_stderr_and_ci():
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    summary = summarize(values, seed=1)
    assert summary.value == pytest.approx(0.625)
    assert summary.stderr == pytest.approx(np.std(values, ddof=1) / math.sqrt(8))
    assert summary.ci_low <= summary.value <= summary.ci_high
    assert summary.n == 8
    assert summarize(values, seed=1) == summary  # seeded
    assert math.isnan(summarize([]).value)


def test_bootstrap_ci_covers_about_95_percent():
    rng = np.random.default_rng(0)
    hits = 0
    for i in range(100):
        s = summarize(list(rng.binomial(1, 0.3, 200).astype(float)), seed=i, resamples=400)
        hits += s.ci_low <= 0.3 <= s.ci_high
    assert 88 <= hits <= 100


def test_unknown_name_suggests_closest():
    error = UnknownNameError("task", "mmul", ["mmlu", "truthfulqa_mc1"])
    assert "Did you mean 'mmlu'?" in str(error) and "truthfulqa_mc1" in str(error)


def _brute_force_acceptance(mu: float, level: float = 0.95) -> tuple[float, float]:
    """Feldman and Cousins's construction done by hand: sort a fine grid of x by the likelihood ratio against the
    best allowed mean, max(x, 0), and take x until `level` of N(mu, 1) is in."""
    from scipy.stats import norm

    x = np.linspace(-15, 15, 600_001)
    ratio = -((x - mu) ** 2) / 2 + (x - np.maximum(x, 0.0)) ** 2 / 2
    order = np.argsort(-ratio, kind="stable")
    taken = x[order][: np.searchsorted(np.cumsum(norm.pdf(x[order] - mu) * (x[1] - x[0])), level) + 1]
    return float(taken.min()), float(taken.max())


def test_bounded_interval_is_feldman_cousins_and_covers_its_level_at_the_bound():
    # The interval at x is {mu : x in acceptance(mu)}: its ends are where acceptance's ends cross x.
    for mu in (0.3, 1.0, 1.5):
        left, right = _brute_force_acceptance(mu)
        assert bounded_normal_interval(right, 1.0, high=99.0)[0] == pytest.approx(mu, abs=2e-3)
        assert bounded_normal_interval(left, 1.0, high=99.0)[1] == pytest.approx(mu, abs=2e-3)
    # At mu = 0 the acceptance is one-sided: 0 is left out exactly when x > z(0.95), 5% of the time.
    assert bounded_normal_interval(1.6, 1.0)[0] == 0.0 < bounded_normal_interval(1.7, 1.0)[0]
    rng = np.random.default_rng(0)
    draws = rng.normal(0.0, 1.0, 2_000)
    covered = np.mean([bounded_normal_interval(x, 1.0, high=99.0)[0] == 0.0 for x in draws])
    assert covered == pytest.approx(0.95, abs=0.015)  # three standard errors of a share of 2,000
    # Far from the bound it is the two-sided normal interval, in the estimate's units, clipped at `high`.
    low, high = bounded_normal_interval(0.5, 0.05)
    assert (low, high) == (pytest.approx(0.5 - 1.959964 * 0.05), pytest.approx(0.5 + 1.959964 * 0.05))
    assert bounded_normal_interval(0.99, 0.05)[1] == 1.0
    assert bounded_normal_interval(-0.2, 0.0) == (0.0, 0.0)


def test_bounded_interval_with_an_error_that_depends_on_the_truth_covers_its_level_everywhere():
    # An estimator whose spread grows with the truth (as a share's does where its information falls): testing each
    # mu with its own error is Neyman's construction, exact at every mu; the error at the estimate is not.
    def error(mu):
        return 0.2 + 0.5 * max(mu, 0.0)

    rng = np.random.default_rng(1)
    for mu in (0.0, 0.3, 1.0, 3.0):
        draws = mu + error(mu) * rng.normal(size=1_000)
        ours = [bounded_normal_interval(x, error(x), high=99.0, stderr_at=error) for x in draws]
        covered = np.mean([low - 1e-9 <= mu <= high + 1e-9 for low, high in ours])
        assert covered == pytest.approx(0.95, abs=0.02), mu  # three standard errors of a share of 1,000
        if mu == 0.0:  # with the estimate's error 0 is accepted whenever x <= 1.645 (0.2 + 0.5 x): too often
            fixed = np.mean([bounded_normal_interval(x, error(x), high=99.0)[0] == 0.0 for x in draws])
            assert fixed > 0.975
    # far from the bound, each end is the mean whose own error puts the estimate at z(0.975) from it
    def slower(mu):
        return 0.2 + 0.1 * max(mu, 0.0)

    low, high = bounded_normal_interval(2.0, slower(2.0), high=99.0, stderr_at=slower)
    z = NormalDist().inv_cdf(0.975)
    assert low + z * slower(low) == pytest.approx(2.0) and high - z * slower(high) == pytest.approx(2.0)
