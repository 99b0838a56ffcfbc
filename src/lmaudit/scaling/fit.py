"""Scaling-law fits with bootstrap confidence intervals.

- L(C) = a*C^b + c: least squares on log-loss residuals, multi-start; residual bootstrap (a ladder has few points,
  so resampling whole runs would often leave too few distinct computes to fit three parameters).
- L(N, D) = E + A/N^alpha + B/D^beta: Chinchilla's approach 3. log L is written as a log-sum-exp of
  (a - alpha log N, b - beta log D, e) with A, B, E = exp(a, b, e); the Huber loss (delta 1e-3) of log-loss
  residuals is minimised by L-BFGS from the best points of a grid of starts; runs are resampled for the bootstrap.
- -E[log pass_rate(C)] = alpha*C^(-k): a straight line in log-log space; problems are resampled for the bootstrap.

Each fit keeps its bootstrap parameter samples, so any derived quantity (an extrapolated loss, the compute-optimal
N and D) gets an interval from the same resamples.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from scipy.optimize import least_squares, minimize
from scipy.special import logsumexp

from lmaudit.core.errors import DataError

HUBER_DELTA = 1e-3
T = TypeVar("T")


def _one_blas_thread(fit: Callable[..., T]) -> Callable[..., T]:
    """Run a fit with one BLAS thread: the optimisers' 3x3 and 5x5 linear algebra is many times slower when BLAS
    spreads it over threads that then wait for busy cores."""

    @functools.wraps(fit)
    def single(*args: Any, **kwargs: Any) -> T:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return fit(*args, **kwargs)

    return single


@dataclass(frozen=True)
class Estimate:
    """A fitted value and its bootstrap percentile interval."""

    value: float
    ci_low: float
    ci_high: float

    def contains(self, x: float) -> bool:
        return self.ci_low <= x <= self.ci_high

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}


def _estimate(value: float, samples: np.ndarray, confidence: float) -> Estimate:
    tail = 100 * (1 - confidence) / 2
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return Estimate(float(value), math.nan, math.nan)
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Estimate(float(value), float(low), float(high))


def _check_points(what: str, minimum: int, **columns: Sequence[float]) -> list[np.ndarray]:
    arrays = [np.asarray(v, dtype=np.float64) for v in columns.values()]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise DataError(f"{what}: columns {', '.join(columns)} have different lengths")
    if n < minimum:
        raise DataError(f"{what} needs at least {minimum} points, got {n}")
    for name, values in zip(columns, arrays):
        bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
        if bad.size:
            raise DataError(f"{what}: point {int(bad[0]) + 1} has {name} = {float(values[bad[0]])!r}; "
                            f"every {name} must be a positive finite number")
    return arrays


# -- L(C) = a*C^b + c -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ComputeLawFit:
    """L(C) = a*C^b + c (b < 0 for a falling loss); parameters with bootstrap CIs."""

    a: Estimate
    b: Estimate
    c: Estimate
    n_points: int
    rmse_log: float
    confidence: float
    samples: np.ndarray = field(repr=False, compare=False)  # bootstrap rows of (a, b, c)

    def predict(self, compute: float | np.ndarray) -> np.ndarray:
        return self.a.value * np.asarray(compute, dtype=np.float64) ** self.b.value + self.c.value

    def sample_predictions(self, compute: float | np.ndarray) -> np.ndarray:
        """Predictions of every bootstrap fit: shape (resamples, len(compute))."""
        x = np.atleast_1d(np.asarray(compute, dtype=np.float64))
        a, b, c = (self.samples[:, i:i + 1] for i in range(3))
        return a * x[None, :] ** b + c

    def extrapolate(self, compute: float) -> Estimate:
        return _estimate(float(self.predict(compute)), self.sample_predictions(compute)[:, 0], self.confidence)

    def to_dict(self) -> dict:
        return {"law": "L(C) = a*C^b + c", "a": self.a.to_dict(), "b": self.b.to_dict(), "c": self.c.to_dict(),
                "n_points": self.n_points, "rmse_log": self.rmse_log, "confidence": self.confidence,
                "resamples": int(len(self.samples))}


def _compute_jacobian(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """d log L / d (log a', b, log c)."""
    w = 1 / (1 + np.exp(theta[2] - theta[0] - theta[1] * x))  # share of the power-law term
    return np.stack([w, w * x, 1 - w], axis=1)


def _fit_compute_once(x: np.ndarray, y: np.ndarray, starts: list[np.ndarray]) -> np.ndarray:
    """Best (log a', b, log c) over the starts; x = log(C / C_ref), y = log L."""

    def residuals(theta: np.ndarray) -> np.ndarray:
        return np.logaddexp(theta[0] + theta[1] * x, theta[2]) - y

    best, best_cost = starts[0], math.inf
    for start in starts:
        result = least_squares(residuals, start, jac=lambda t: _compute_jacobian(t, x), method="lm", xtol=1e-12, ftol=1e-12)
        if result.cost < best_cost:
            best, best_cost = result.x, result.cost
    return best


def _compute_starts(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Starts from a grid of floors c (as fractions of the smallest loss): log(L - c) is then a line in x."""
    loss = np.exp(y)
    starts = []
    for fraction in (0.0, 0.3, 0.6, 0.8, 0.9, 0.95):
        c = fraction * loss.min()
        slope, intercept = np.polyfit(x, np.log(loss - c), 1)
        starts.append(np.array([intercept, min(slope, -1e-3), math.log(max(c, 1e-3 * loss.min()))]))
    return starts


@_one_blas_thread
def fit_compute_law(compute: Sequence[float], loss: Sequence[float], *, resamples: int = 1000,
                    confidence: float = 0.95, seed: int = 0) -> ComputeLawFit:
    """Fit L(C) = a*C^b + c to (compute, loss) points."""
    compute_arr, loss_arr = _check_points("L(C) = a*C^b + c", 4, compute=compute, loss=loss)
    if len(np.unique(compute_arr)) < 3:
        raise DataError("L(C) = a*C^b + c needs at least 3 distinct compute values")
    log_ref = float(np.mean(np.log(compute_arr)))
    x, y = np.log(compute_arr) - log_ref, np.log(loss_arr)
    theta = _fit_compute_once(x, y, _compute_starts(x, y))
    fitted = np.logaddexp(theta[0] + theta[1] * x, theta[2])
    residuals = y - fitted
    n = len(x)
    # Residuals of a least-squares fit are smaller than the errors, most at high-leverage points (the ends of
    # the ladder): divide each by sqrt(1 - leverage). With few points the noise level itself is uncertain, so
    # each resample also draws its scale from the sampling distribution of the residual variance (chi-square,
    # n - 3 degrees of freedom); otherwise the intervals come out normal-narrow where Student-t ones are due.
    jac = _compute_jacobian(theta, x)
    leverage = np.einsum("ij,jk,ik->i", jac, np.linalg.pinv(jac.T @ jac), jac)
    scaled = residuals / np.sqrt(np.clip(1 - leverage, 1e-3, None))
    scaled -= scaled.mean()
    rng = np.random.default_rng(seed)
    thetas = np.empty((resamples, 3))
    for i in range(resamples):
        spread = math.sqrt((n - 3) / rng.chisquare(n - 3))
        y_star = fitted + spread * rng.choice(scaled, size=n, replace=True)
        thetas[i] = _fit_compute_once(x, y_star, [theta] + _compute_starts(x, y_star))

    def natural(t: np.ndarray) -> np.ndarray:
        """(log a', b, log c) -> (a, b, c) with a = a' * C_ref^-b."""
        t = np.atleast_2d(t)
        return np.stack([np.exp(t[:, 0] - t[:, 1] * log_ref), t[:, 1], np.exp(t[:, 2])], axis=1)

    point, samples = natural(theta)[0], natural(thetas)
    return ComputeLawFit(
        a=_estimate(point[0], samples[:, 0], confidence), b=_estimate(point[1], samples[:, 1], confidence),
        c=_estimate(point[2], samples[:, 2], confidence), n_points=n,
        rmse_log=float(np.sqrt(np.mean(residuals ** 2))), confidence=confidence, samples=samples)


# -- L(N, D) = E + A/N^alpha + B/D^beta --------------------------------------------------------------

@dataclass(frozen=True)
class ComputeOptimal:
    """The N and D that minimise the fitted L(N, D) under the budget C = 6 N D."""

    compute: float
    n_params: Estimate
    tokens: Estimate
    loss: Estimate

    def to_dict(self) -> dict:
        return {"compute": self.compute, "n_params": self.n_params.to_dict(), "tokens": self.tokens.to_dict(),
                "loss": self.loss.to_dict()}


@dataclass(frozen=True)
class ParamsLawFit:
    """L(N, D) = E + A/N^alpha + B/D^beta (Chinchilla approach 3); parameters with bootstrap CIs."""

    E: Estimate
    A: Estimate
    B: Estimate
    alpha: Estimate
    beta: Estimate
    n_points: int
    huber_delta: float
    confidence: float
    samples: np.ndarray = field(repr=False, compare=False)  # bootstrap rows of (E, A, B, alpha, beta)

    @property
    def point(self) -> np.ndarray:
        return np.array([self.E.value, self.A.value, self.B.value, self.alpha.value, self.beta.value])

    def predict(self, n_params: float | np.ndarray, tokens: float | np.ndarray) -> np.ndarray:
        return _params_law(self.point[None, :], np.asarray(n_params, float), np.asarray(tokens, float))[0]

    def extrapolate(self, n_params: float, tokens: float) -> Estimate:
        samples = _params_law(self.samples, np.asarray(n_params, float), np.asarray(tokens, float))
        return _estimate(float(self.predict(n_params, tokens)), samples, self.confidence)

    def compute_optimal(self, compute: float) -> ComputeOptimal:
        """Closed form: N* = G (C/6)^(beta/(alpha+beta)), D* = (C/6) / N*, G = (alpha A / (beta B))^(1/(alpha+beta))."""
        if not (math.isfinite(compute) and compute > 0):
            raise DataError(f"compute budget must be a positive number, got {compute!r}")

        def optimum(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            E, A, B, alpha, beta = (p[:, i] for i in range(5))
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
                n = G * (compute / 6) ** (beta / (alpha + beta))
                d = compute / 6 / n
                return n, d, E + A / n ** alpha + B / d ** beta

        (n0,), (d0,), (l0,) = optimum(self.point[None, :])
        ns, ds, ls = optimum(self.samples)
        return ComputeOptimal(compute, _estimate(n0, ns, self.confidence), _estimate(d0, ds, self.confidence),
                              _estimate(l0, ls, self.confidence))

    def to_dict(self) -> dict:
        names = ("E", "A", "B", "alpha", "beta")
        return {"law": "L(N, D) = E + A/N^alpha + B/D^beta", **{k: getattr(self, k).to_dict() for k in names},
                "n_points": self.n_points, "huber_delta": self.huber_delta, "confidence": self.confidence,
                "resamples": int(len(self.samples))}


def separable(n_params: Sequence[float], tokens: Sequence[float]) -> bool:
    """Whether N and D vary independently enough for L(N, D) to tell their effects apart."""
    log_n, log_d = np.log(np.asarray(n_params, float)), np.log(np.asarray(tokens, float))
    if np.ptp(log_n) == 0 or np.ptp(log_d) == 0:
        return False
    return abs(np.corrcoef(log_n, log_d)[0, 1]) < 0.999


def _params_law(p: np.ndarray, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    E, A, B, alpha, beta = (p[:, i:i + 1] for i in range(5))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return E + A / np.atleast_1d(n)[None, :] ** alpha + B / np.atleast_1d(d)[None, :] ** beta


def _huber_objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray,
                     weights: np.ndarray, delta: float) -> tuple[float, np.ndarray]:
    """Huber loss of log-loss residuals for theta = (a, b, e, alpha, beta), and its gradient."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    # log-sum-exp by hand: scipy's generic version costs more than the rest of this function on small arrays.
    top = terms.max(axis=0)
    share = np.exp(terms - top)
    total = share.sum(axis=0)
    share /= total
    r = top + np.log(total) - log_loss
    small = np.abs(r) <= delta
    value = float(np.sum(weights * np.where(small, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta))))
    dr = weights * np.clip(r, -delta, delta)  # derivative of Huber with respect to the residual
    grad = np.array([np.sum(dr * share[0]), np.sum(dr * share[1]), np.sum(dr * share[2]),
                     -np.sum(dr * share[0] * log_n), -np.sum(dr * share[1] * log_d)])
    return value, grad


# Chinchilla's grid: alpha, beta in 0..2, e in -1..1.5, a, b in 0..25.
_GRID = np.array([(a, b, e, al, be) for a, b in itertools.product(range(0, 30, 5), repeat=2)
                  for e in np.arange(-1.0, 2.0, 0.5) for al in np.arange(0, 2.5, 0.5) for be in np.arange(0, 2.5, 0.5)])


def _grid_objective(log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray, delta: float) -> np.ndarray:
    g = _GRID
    terms = np.stack([g[:, 0:1] - g[:, 3:4] * log_n, g[:, 1:2] - g[:, 4:5] * log_d,
                      np.broadcast_to(g[:, 2:3], (len(g), len(log_n)))])
    r = np.abs(logsumexp(terms, axis=0) - log_loss)
    return np.where(r <= delta, 0.5 * r * r, delta * (r - 0.5 * delta)).sum(axis=1)


def _lbfgs(theta0: np.ndarray, args: tuple) -> tuple[np.ndarray, float]:
    result = minimize(_huber_objective, theta0, args=args, jac=True, method="L-BFGS-B",
                      options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12})
    return result.x, float(result.fun)


@_one_blas_thread
def fit_params_law(n_params: Sequence[float], tokens: Sequence[float], loss: Sequence[float], *,
                   resamples: int = 1000, confidence: float = 0.95, seed: int = 0, starts: int = 16,
                   huber_delta: float = HUBER_DELTA) -> ParamsLawFit:
    """Fit L(N, D) = E + A/N^alpha + B/D^beta; N = non-embedding parameters, D = training tokens."""
    n_arr, d_arr, loss_arr = _check_points("L(N, D) = E + A/N^alpha + B/D^beta", 7,
                                           n_params=n_params, tokens=tokens, loss=loss)
    log_n, log_d, log_loss = np.log(n_arr), np.log(d_arr), np.log(loss_arr)
    if not separable(n_arr, d_arr):
        raise DataError("L(N, D) cannot separate the effect of N from that of D: these runs do not vary N and D "
                        "independently (one model size, one token count, or D a fixed power of N as in a ladder "
                        "with one tokens-per-parameter recipe). Add runs that vary them independently, or fit L(C)")
    weights = np.ones_like(log_n)
    args = (log_n, log_d, log_loss, weights, huber_delta)
    best_starts = _GRID[np.argsort(_grid_objective(log_n, log_d, log_loss, huber_delta))[:starts]]
    theta, best = best_starts[0], math.inf
    for start in best_starts:
        candidate, value = _lbfgs(start, args)
        if value < best:
            theta, best = candidate, value
    rng = np.random.default_rng(seed)
    count = len(log_n)
    thetas = np.empty((resamples, 5))
    for i in range(resamples):
        # Case resampling as integer weights: the same points, counted as often as they were drawn.
        resampled = np.bincount(rng.integers(0, count, count), minlength=count).astype(np.float64)
        thetas[i] = _lbfgs(theta, (log_n, log_d, log_loss, resampled, huber_delta))[0]

    def natural(t: np.ndarray) -> np.ndarray:
        t = np.atleast_2d(t)
        return np.stack([np.exp(t[:, 2]), np.exp(t[:, 0]), np.exp(t[:, 1]), t[:, 3], t[:, 4]], axis=1)

    point, samples = natural(theta)[0], natural(thetas)
    est = [_estimate(point[i], samples[:, i], confidence) for i in range(5)]
    return ParamsLawFit(E=est[0], A=est[1], B=est[2], alpha=est[3], beta=est[4], n_points=count,
                        huber_delta=huber_delta, confidence=confidence, samples=samples)


# -- -E[log pass_rate(C)] = alpha*C^(-k) ---------------------------------------------------------------

@dataclass(frozen=True)
class PassRateLawFit:
    """-mean over problems of log pass_rate = alpha*C^(-k), for one set of problems."""

    label: str
    alpha: Estimate
    k: Estimate
    problems: tuple[str, ...]
    compute: tuple[float, ...]
    neg_log_pass: tuple[float, ...]  # the fitted quantity per model
    confidence: float
    samples: np.ndarray = field(repr=False, compare=False)  # bootstrap rows of (alpha, k)

    def predict(self, compute: float | np.ndarray) -> np.ndarray:
        return self.alpha.value * np.asarray(compute, dtype=np.float64) ** -self.k.value

    def extrapolate(self, compute: float) -> Estimate:
        """The predicted -E[log pass_rate] at `compute` (exp(-value) is the geometric-mean pass rate)."""
        draws = self.samples[:, 0] * compute ** -self.samples[:, 1]
        return _estimate(float(self.predict(compute)), draws, self.confidence)

    def to_dict(self) -> dict:
        return {"label": self.label, "law": "-E[log pass_rate] = alpha*C^(-k)", "alpha": self.alpha.to_dict(),
                "k": self.k.to_dict(), "n_problems": len(self.problems), "compute": list(self.compute),
                "neg_log_pass": list(self.neg_log_pass), "confidence": self.confidence}


@dataclass(frozen=True)
class PassRateFit:
    overall: PassRateLawFit
    buckets: tuple[PassRateLawFit, ...]
    dropped_problems: tuple[str, ...]  # not solved (pass rate > 0) by every model

    def to_dict(self) -> dict:
        return {"overall": self.overall.to_dict(), "buckets": [b.to_dict() for b in self.buckets],
                "dropped_problems": list(self.dropped_problems)}


def _fit_line(log_c: np.ndarray, log_y: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(log_c, log_y, 1)
    return math.exp(intercept), -slope


def _fit_pass_group(label: str, problems: list[str], compute: np.ndarray, rates: np.ndarray,
                    resamples: int, confidence: float, rng: np.random.Generator) -> PassRateLawFit:
    """rates: (models, problems) pass rates, all positive."""
    neg_log = -np.log(rates)
    y = neg_log.mean(axis=1)
    if np.any(y <= 0):
        model = int(np.flatnonzero(y <= 0)[0])
        raise DataError(f"{label}: the model with compute {compute[model]:g} passes every problem with rate 1; "
                        f"-E[log pass_rate] = 0 has no logarithm to fit")
    log_c = np.log(compute)
    alpha, k = _fit_line(log_c, np.log(y))
    samples = np.full((resamples, 2), np.nan)
    count = len(problems)
    for i in range(resamples):
        y_star = neg_log[:, rng.integers(0, count, count)].mean(axis=1)
        if np.all(y_star > 0):
            samples[i] = _fit_line(log_c, np.log(y_star))
    return PassRateLawFit(label, _estimate(alpha, samples[:, 0], confidence), _estimate(k, samples[:, 1], confidence),
                          tuple(problems), tuple(compute.tolist()), tuple(y.tolist()), confidence, samples)


@_one_blas_thread
def fit_pass_rate_law(compute: Sequence[float], pass_rates: np.ndarray | Sequence[Sequence[float]],
                      problems: Sequence[str], *, buckets: int = 3, resamples: int = 1000,
                      confidence: float = 0.95, seed: int = 0) -> PassRateFit:
    """compute: one value per model; pass_rates: (models, problems) in [0, 1]; problems: their ids.

    Only problems every model solves at least sometimes enter the fit. They are split into `buckets` difficulty
    buckets of equal size by their mean -log pass rate over the models, and each bucket gets its own fit.
    """
    compute_arr = _check_points("-E[log pass_rate] = alpha*C^(-k)", 3, compute=compute)[0]
    rates = np.asarray(pass_rates, dtype=np.float64)
    if rates.shape != (len(compute_arr), len(problems)):
        raise DataError(f"pass_rates has shape {rates.shape}, expected (models, problems) = "
                        f"({len(compute_arr)}, {len(problems)})")
    if len(np.unique(compute_arr)) < 2:
        raise DataError("the pass-rate law needs models with at least 2 distinct compute values")
    bad = np.argwhere(~np.isfinite(rates) | (rates < 0) | (rates > 1))
    if bad.size:
        m, p = bad[0]
        raise DataError(f"problem '{problems[p]}', model {m + 1}: pass rate {rates[m, p]!r} is not in [0, 1]")
    solved = np.all(rates > 0, axis=0)
    kept = [problems[i] for i in np.flatnonzero(solved)]
    if len(kept) < max(2, buckets):
        raise DataError(f"only {len(kept)} of {len(problems)} problems are solved by every model; the pass-rate "
                        f"law needs at least {max(2, buckets)}")
    rates = rates[:, solved]
    rng = np.random.default_rng(seed)
    overall = _fit_pass_group("all", kept, compute_arr, rates, resamples, confidence, rng)
    order = np.argsort(-np.log(rates).mean(axis=0), kind="stable")  # easiest first
    fits = []
    for index, part in enumerate(np.array_split(order, buckets) if buckets > 1 else []):
        label = f"bucket {index + 1}/{buckets} ({'easiest' if index == 0 else 'hardest' if index == buckets - 1 else 'middle'})"
        fits.append(_fit_pass_group(label, [kept[i] for i in part], compute_arr, rates[:, part], resamples,
                                    confidence, rng))
    dropped = tuple(problems[i] for i in np.flatnonzero(~solved))
    return PassRateFit(overall, tuple(fits), dropped)

