"""The fitters on synthetic data with known parameters, and their errors on bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmaudit.core.errors import DataError
from lmaudit.scaling.fit import fit_compute_law, fit_params_law, fit_pass_rate_law

TRIALS = 20


def _coverage(hits: list[list[bool]]) -> np.ndarray:
    return np.mean(np.asarray(hits), axis=0)


def test_compute_law_recovers_known_parameters():
    a, b, c = 40.0, -0.12, 1.8
    compute = np.logspace(9, 13, 10)
    hits = []
    for trial in range(TRIALS):
        rng = np.random.default_rng(100 + trial)
        loss = (a * compute ** b + c) * np.exp(rng.normal(0, 0.005, compute.size))
        fit = fit_compute_law(compute, loss, resamples=200, seed=trial)
        far = fit.extrapolate(1e14)
        hits.append([fit.a.contains(a), fit.b.contains(b), fit.c.contains(c), far.contains(a * 1e14 ** b + c)])
        assert fit.rmse_log < 0.01
    assert np.all(_coverage(hits) >= 0.9), _coverage(hits)


def test_params_law_recovers_known_parameters():
    """Chinchilla's published fit as the truth, on a 6 x 6 grid of N and D with 1% noise."""
    truth = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    n_grid, d_grid = np.meshgrid(np.logspace(7, 9.5, 6), np.logspace(9, 11.5, 6))
    n, d = n_grid.ravel(), d_grid.ravel()
    clean = truth["E"] + truth["A"] / n ** truth["alpha"] + truth["B"] / d ** truth["beta"]
    hits = []
    for trial in range(TRIALS):
        rng = np.random.default_rng(200 + trial)
        fit = fit_params_law(n, d, clean * np.exp(rng.normal(0, 0.01, n.size)), resamples=100, seed=trial)
        hits.append([getattr(fit, name).contains(value) for name, value in truth.items()])
    assert np.all(_coverage(hits) >= 0.9), _coverage(hits)


def test_params_law_fit_is_exact_on_clean_data_and_gives_the_compute_optimum():
    E, A, B, alpha, beta = 1.9, 300.0, 900.0, 0.3, 0.35
    n_grid, d_grid = np.meshgrid(np.logspace(6, 9, 5), np.logspace(8, 11, 5))
    n, d = n_grid.ravel(), d_grid.ravel()
    fit = fit_params_law(n, d, E + A / n ** alpha + B / d ** beta, resamples=20)
    for name, value in {"E": E, "A": A, "B": B, "alpha": alpha, "beta": beta}.items():
        assert getattr(fit, name).value == pytest.approx(value, rel=1e-3), name
    budget = 1e20
    optimum = fit.compute_optimal(budget)
    # Brute force along the budget line C = 6 N D.
    grid = np.logspace(5, 12, 200_001)
    losses = E + A / grid ** alpha + B / (budget / 6 / grid) ** beta
    assert optimum.n_params.value == pytest.approx(grid[np.argmin(losses)], rel=1e-3)
    assert 6 * optimum.n_params.value * optimum.tokens.value == pytest.approx(budget)
    assert optimum.loss.value == pytest.approx(losses.min(), rel=1e-9)
    assert optimum.n_params.ci_high - optimum.n_params.ci_low < 1e-6 * optimum.n_params.value  # noiseless data


def test_pass_rate_law_recovers_known_parameters_and_orders_buckets():
    """Pass rates from 100 samples per problem: -log p = difficulty * alpha * C^-k."""
    alpha, k = 1.5 * 1e18 ** 0.233, 0.233
    compute = np.logspace(18, 21, 6)
    hits = []
    for trial in range(TRIALS):
        rng = np.random.default_rng(300 + trial)
        difficulty = rng.uniform(0.5, 2.0, 40)
        true_rates = np.exp(-np.outer(alpha * compute ** -k, difficulty))
        rates = rng.binomial(100, true_rates) / 100
        result = fit_pass_rate_law(compute, rates, [f"p{i}" for i in range(40)], resamples=200, seed=trial)
        kept = np.isin([f"p{i}" for i in range(40)], result.overall.problems)
        hits.append([result.overall.k.contains(k), result.overall.alpha.contains(alpha * difficulty[kept].mean())])
        middle = float(np.exp(np.log(compute).mean()))
        bucket_values = [float(bucket.predict(middle)) for bucket in result.buckets]
        assert bucket_values == sorted(bucket_values)  # easiest bucket first
        assert sum(len(b.problems) for b in result.buckets) == len(result.overall.problems)
    assert np.all(_coverage(hits) >= 0.9), _coverage(hits)


def test_pass_rate_law_drops_problems_some_model_never_solves():
    rates = np.array([[0.2, 0.0, 0.5, 0.4], [0.4, 0.1, 0.6, 0.5], [0.6, 0.3, 0.8, 0.7]])
    result = fit_pass_rate_law([1e18, 1e19, 1e20], rates, ["a", "b", "c", "d"], buckets=1, resamples=50)
    assert result.dropped_problems == ("b",)
    assert result.overall.problems == ("a", "c", "d")
    expected = -np.log(rates[:, [0, 2, 3]]).mean(axis=1)
    np.testing.assert_allclose(result.overall.neg_log_pass, expected)
    k = -np.polyfit(np.log([1e18, 1e19, 1e20]), np.log(expected), 1)[0]
    assert result.overall.k.value == pytest.approx(k)


@pytest.mark.parametrize("compute, loss, message", [
    ([1e9, 1e10, 1e11], [4.0, 3.5, 3.2], "at least 4 points, got 3"),
    ([1e9, 1e10, 0.0, 1e12], [4.0, 3.5, 3.2, 3.0], "point 3 has compute = 0.0"),
    ([1e9, 1e10, 1e11, 1e12], [4.0, math.nan, 3.2, 3.0], "point 2 has loss = nan"),
    ([1e9, 1e9, 1e10, 1e10], [4.0, 4.1, 3.2, 3.3], "3 distinct compute"),
])
def test_compute_law_rejects_bad_points(compute, loss, message):
    with pytest.raises(DataError, match=message):
        fit_compute_law(compute, loss, resamples=10)


def test_params_law_rejects_a_single_recipe():
    n = np.logspace(5, 7, 8)
    with pytest.raises(DataError, match="cannot separate"):
        fit_params_law(n, 20 * n, 2 + 50 / n ** 0.3, resamples=10)
