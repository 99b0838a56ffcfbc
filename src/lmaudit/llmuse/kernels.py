"""The one-dimensional mixture MLE, solved exactly, and the bootstrap fused around it (numba, a resample a thread).

For a sentence with log-likelihood ratio d = log Q(x) - log P(x), write a = 1 / (1 + e^d) and b = 1 / (1 + e^-d)
(its posterior weights under P and Q at even prior odds; a + b = 1). Up to a constant free of alpha,

    l(alpha)   = sum_i w_i log((1 - alpha) a_i + alpha b_i)
    l'(alpha)  = sum_i w_i g_i,   g_i = (b_i - a_i) / ((1 - alpha) a_i + alpha b_i)
    l''(alpha) = -sum_i w_i g_i^2  <= 0

so l is concave on [0, 1] and the MLE is 0 when l'(0) <= 0, 1 when l'(1) >= 0, and otherwise the root of l',
found by Newton steps kept inside a shrinking bracket (bisection when a step would leave it). a and b are each
computed from one exponential of -|d|, so neither is lost to rounding when the other is close to 1.

The corrected score. With p and q estimated from finite references, a row's estimated ratio is d_i + e_i, with
reference noise e_i of mean about 0 (the +1/2 smoothing makes log shares nearly unbiased) and a variance 2 s_i
that the references' counts give (`_log_odds_ratios`: sum over the row's words of (1 - p) / (n p), over the
words it lacks of p / (n (1 - p)), and the same for q; about V / n per corpus, 0.4 in the issue's setting). In
u = d the score term h(u) = (e^u - 1) / (1 - alpha + alpha e^u) is convex where the row looks human, so the
noise raises its mean, E h(u + e) = h(u) + s h''(u) + ..., and the MLE moves up (by 1.5-2 points there). The
corrected score takes that out, h*(u) = h(u) - s h''(u), written as h at u moved by -s h''/h' = -s t with
t = ((1 - alpha) a - alpha b) / ((1 - alpha) a + alpha b) in [-1, 1]: to second order the same, exact for
lognormal noise at alpha = 0 (E[R e^(e - s)] = R for the likelihood ratio R = e^u) and at alpha = 1, and a row
never moves by more than s, so a small reference cannot turn a row's sign (the plain second-order form can).
The corrected score is not a derivative of a concave function, so the search keeps its bracket and falls back
to bisection where a Newton step would leave it; with s = 0 it is the MLE's.

A bootstrap resample draws n sentences with replacement from each corpus it resamples. The draws come from a
counter-based generator (SplitMix64 keyed by the seed and the resample's number), so a resample's result does not
depend on the thread that ran it or on how many threads there are. One resample, in one pass each: count the
drawn human and AI reference sentences' words (new p and q, and each word's noise), draw the target's weights (or
keep its own multiplicities, for a references-only resample), compute d and s only for the target rows drawn at
least once, and solve.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

D_CLIP = 700.0  # e^-700 is still a positive float64, so every mixture density stays positive
TOLERANCE = 1e-9  # on alpha; a share is reported to 1e-4 at best
MAX_STEPS = 100
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2^-53


@njit(cache=True, nogil=True)
def _next(state: np.ndarray) -> float:
    """SplitMix64 step on state[0]; a uniform float in [0, 1) with 53 random bits."""
    state[0] += _GOLDEN
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) * _TO_UNIT


@njit(cache=True, nogil=True)
def _stream(seed: int, resample: int) -> np.ndarray:
    """The generator state of one resample: the seed and the resample's number, mixed, so that no two resamples'
    streams are shifted copies of each other."""
    state = np.empty(1, dtype=np.uint64)
    state[0] = np.uint64(seed) ^ (np.uint64(resample) * _MIX1)
    for _ in range(2):
        _next(state)
    z = state[0]
    z = (z ^ (z >> np.uint64(31))) * _MIX2
    state[0] = z ^ (z >> np.uint64(29))
    return state


@njit(cache=True, nogil=True)
def _weights(d: float) -> tuple[float, float]:
    x = min(max(d, -D_CLIP), D_CLIP)
    small = np.exp(-abs(x))
    if x > 0:
        return small / (1.0 + small), 1.0 / (1.0 + small)
    return 1.0 / (1.0 + small), small / (1.0 + small)


# fastmath lets the sums be reordered into vector lanes; every term is finite, so nothing else changes.
@njit(cache=True, nogil=True, fastmath=True)
def _slope(a: np.ndarray, b: np.ndarray, w: np.ndarray, size: int, alpha: float) -> tuple[float, float]:
    first = 0.0
    second = 0.0
    rest = 1.0 - alpha
    for i in range(size):
        g = (b[i] - a[i]) / (rest * a[i] + alpha * b[i])
        first += w[i] * g
        second += w[i] * g * g
    return first, second


@njit(cache=True, nogil=True)
def _moved(a: float, b: float, d: float, s: float, alpha: float) -> tuple[float, float, float, float]:
    """One row's mixture density m at alpha, and its weights and density at its log ratio moved by -s t."""
    rest = 1.0 - alpha
    m = rest * a + alpha * b
    a_moved, b_moved = _weights(d - s * (rest * a - alpha * b) / m)
    return m, a_moved, b_moved, rest * a_moved + alpha * b_moved


@njit(cache=True, nogil=True)
def _corrected_slope(a: np.ndarray, b: np.ndarray, d: np.ndarray, s: np.ndarray, w: np.ndarray, size: int,
                     alpha: float) -> tuple[float, float]:
    """The corrected score at alpha and minus its derivative (module docstring): each row's g at its log ratio
    d_i moved by -s_i t_i, t_i = ((1 - alpha) a_i - alpha b_i) / ((1 - alpha) a_i + alpha b_i)."""
    first = 0.0
    second = 0.0
    for i in range(size):
        m, a_moved, b_moved, m_moved = _moved(a[i], b[i], d[i], s[i], alpha)
        g = (b_moved - a_moved) / m_moved
        # d g / d alpha = -g^2 + (d g / d d_moved) (d d_moved / d alpha), with d t / d alpha = -2 a b / m^2
        pull = a_moved * b_moved / (m_moved * m_moved) * 2.0 * s[i] * a[i] * b[i] / (m * m)
        first += w[i] * g
        second += w[i] * (g * g - pull)
    return first, second


@njit(cache=True, nogil=True)
def _score(a: np.ndarray, b: np.ndarray, d: np.ndarray, s: np.ndarray, w: np.ndarray, size: int, alpha: float,
           corrected: bool) -> tuple[float, float]:
    if corrected:
        return _corrected_slope(a, b, d, s, w, size, alpha)
    return _slope(a, b, w, size, alpha)


@njit(cache=True, nogil=True)
def _solve(a: np.ndarray, b: np.ndarray, d: np.ndarray, s: np.ndarray, w: np.ndarray, size: int, start: float,
           extended: bool, corrected: bool) -> float:
    """The root in [0, 1] of the score (the MLE's, or the corrected one when `corrected`: d is then each row's log
    ratio and s half its noise's variance) from the first `size` entries of a, b and their weights w.
    `extended`: where the root is past a bound, the Newton step from that bound instead (below 0 or above 1),
    taken with the plain Fisher information there, which is positive where the corrected score's slope need not
    be; it meets the root continuously as the root leaves the bound."""
    # for the plain score, the second value `_score` returns is the information itself
    first, information = _score(a, b, d, s, w, size, 0.0, corrected)
    if first <= 0.0:
        if corrected:
            information = _slope(a, b, w, size, 0.0)[1]
        return first / information if extended and information > 0.0 else 0.0
    first, information = _score(a, b, d, s, w, size, 1.0, corrected)
    if first >= 0.0:
        if corrected:
            information = _slope(a, b, w, size, 1.0)[1]
        return 1.0 + first / information if extended and information > 0.0 else 1.0
    low, high = 0.0, 1.0
    alpha = min(max(start, 1e-6), 1.0 - 1e-6)
    for _ in range(MAX_STEPS):
        first, second = _score(a, b, d, s, w, size, alpha, corrected)
        if first > 0.0:
            low = alpha
        else:
            high = alpha
        proposal = alpha + (first / second if second > 0.0 else 0.0)
        if not (low < proposal < high):
            proposal = 0.5 * (low + high)
        if abs(proposal - alpha) < TOLERANCE or high - low < TOLERANCE:
            return proposal
        alpha = proposal
    return alpha


@njit(cache=True)
def solve_weighted(d: np.ndarray, w: np.ndarray, start: float, extended: bool) -> float:
    """The MLE for log-likelihood ratios d (m,) with weights w (m,) (multiplicities of distinct rows)."""
    return solve_corrected(d, np.zeros(d.size), w, start, extended, False)


@njit(cache=True)
def solve_corrected(d: np.ndarray, s: np.ndarray, w: np.ndarray, start: float, extended: bool,
                    corrected: bool = True) -> float:
    """The corrected-score estimate for estimated log-likelihood ratios d (m,) whose noise has half-variance s
    (m,), with weights w (m,); the plain MLE when not `corrected`."""
    a = np.empty(d.size)
    b = np.empty(d.size)
    ww = np.empty(d.size)
    for i in range(d.size):
        a[i], b[i] = _weights(d[i])
        ww[i] = w[i]
    return _solve(a, b, d.astype(np.float64), s.astype(np.float64), ww, d.size, start, extended, corrected)


@njit(cache=True)
def score_sensitivities(d: np.ndarray, s: np.ndarray, w: np.ndarray, estimate: float) -> tuple[np.ndarray, float]:
    """At an (extended) corrected estimate: each row's d(score term)/d(d_i), and minus the score's slope in alpha
    there (the plain Fisher information at a bound the estimate is past, as `_solve` steps with it)."""
    alpha = min(max(estimate, 0.0), 1.0)
    a, b = np.empty(d.size), np.empty(d.size)
    out = np.empty(d.size)
    for i in range(d.size):
        a[i], b[i] = _weights(d[i])
        m, a_moved, b_moved, m_moved = _moved(a[i], b[i], d[i], s[i], alpha)
        # the move -s t depends on d too: d t / d d = -2 (1 - alpha) alpha a b / m^2
        out[i] = a_moved * b_moved / (m_moved * m_moved) * (1.0 + 2.0 * s[i] * (1.0 - alpha) * alpha * a[i] * b[i]
                                                             / (m * m))
    if estimate < 0.0 or estimate > 1.0:
        information = _slope(a, b, w, d.size, alpha)[1]
    else:
        information = _corrected_slope(a, b, d, s, w, d.size, alpha)[1]
    return out, information


@njit(cache=True)
def log_likelihoods(d: np.ndarray, w: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """sum_i w_i log((1 - alpha) a_i + alpha b_i) at each alpha (d and w of shape (m,))."""
    out = np.zeros(alphas.shape[0])
    for i in range(d.shape[0]):
        a, b = _weights(d[i])
        for j in range(alphas.shape[0]):
            out[j] += w[i] * np.log((1.0 - alphas[j]) * a + alphas[j] * b)
    return out


@njit(cache=True, nogil=True)
def _draw_counts(owners: np.ndarray, counts: np.ndarray, state: np.ndarray) -> None:
    """counts[row] += 1 for each of n draws (with replacement) of a sentence, mapped to its distinct row."""
    counts[:] = 0
    n = owners.size
    for _ in range(n):
        counts[owners[min(int(_next(state) * n), n - 1)]] += 1


@njit(cache=True, nogil=True)
def _word_counts(indptr: np.ndarray, indices: np.ndarray, row_counts: np.ndarray, out: np.ndarray) -> None:
    out[:] = 0.0
    for row in range(row_counts.size):
        c = row_counts[row]
        if c:
            for k in range(indptr[row], indptr[row + 1]):
                out[indices[k]] += c


@njit(cache=True, nogil=True)
def _log_odds_ratios(h_words: np.ndarray, n_h: float, q_words: np.ndarray, n_q: float, smoothing: float,
                     min_h: float, min_q: float, out: np.ndarray, noise: np.ndarray) -> tuple[float, float]:
    """Per word, logit q - logit p of the smoothed shares into `out` and the half-variance its presence adds to
    a row's noise into `noise` (module docstring), both 0 for a word below the vocabulary's minimum counts in
    this resample (it leaves the vocabulary, as it would have left the data's); returns the constants over the
    words kept: sum of log(1 - q_w) - log(1 - p_w), and the half-variance of a row with no word."""
    offset = 0.0
    absent = 0.0
    for w in range(h_words.size):
        if h_words[w] < min_h or q_words[w] < min_q:
            out[w] = 0.0
            noise[w] = 0.0
            continue
        p = (h_words[w] + smoothing) / (n_h + 2.0 * smoothing)
        q = (q_words[w] + smoothing) / (n_q + 2.0 * smoothing)
        out[w] = np.log(q) - np.log1p(-q) - np.log(p) + np.log1p(-p)
        offset += np.log1p(-q) - np.log1p(-p)
        when_absent = p / (n_h * (1.0 - p)) + q / (n_q * (1.0 - q))
        noise[w] = 0.5 * ((1.0 - p) / (n_h * p) + (1.0 - q) / (n_q * q) - when_absent)
        absent += 0.5 * when_absent
    return offset, absent


@njit(cache=True)
def word_weights(h_words: np.ndarray, n_h: float, q_words: np.ndarray, n_q: float, smoothing: float, min_h: float,
                 min_q: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """`_log_odds_ratios` with its outputs allocated: per word, the log odds ratio and the noise it adds; the
    two constants."""
    ratios, noise = np.empty(h_words.size), np.empty(h_words.size)
    offset, absent = _log_odds_ratios(h_words, n_h, q_words, n_q, smoothing, min_h, min_q, ratios, noise)
    return ratios, noise, offset, absent


@njit(cache=True, parallel=True)
def bootstrap_joint(t_indptr, t_indices, t_owners, h_indptr, h_indices, h_owners, q_indptr, q_indices, q_owners,
                    width: int, smoothing: float, min_h: float, min_q: float, seed: int, resamples: int,
                    start: float, resample_target: bool, extended: bool, corrected: bool) -> np.ndarray:
    """Estimates (corrected or plain) of `resamples` resamples of the human and AI references, with the target
    resampled too when `resample_target` and held as it is otherwise. Each resample chooses its vocabulary again
    by the minimum counts (`min_h`, `min_q`), as the data's was chosen, and its rows' noise from its own counts."""
    out = np.empty(resamples)
    n_h, n_q = float(h_owners.size), float(q_owners.size)
    m_t, m_h, m_q = t_indptr.size - 1, h_indptr.size - 1, q_indptr.size - 1
    held = np.zeros(m_t, np.int64)  # the target's own multiplicities, for resamples that hold it
    if not resample_target:
        for owner in t_owners:
            held[owner] += 1
    for r in prange(resamples):
        state = _stream(seed, r)
        h_rows, q_rows, t_rows = np.empty(m_h, np.int64), np.empty(m_q, np.int64), np.empty(m_t, np.int64)
        h_words, q_words = np.empty(width), np.empty(width)
        ratios, noise = np.empty(width), np.empty(width)
        _draw_counts(h_owners, h_rows, state)
        _draw_counts(q_owners, q_rows, state)
        if resample_target:
            _draw_counts(t_owners, t_rows, state)
        else:
            t_rows[:] = held
        _word_counts(h_indptr, h_indices, h_rows, h_words)
        _word_counts(q_indptr, q_indices, q_rows, q_words)
        offset, absent = _log_odds_ratios(h_words, n_h, q_words, n_q, smoothing, min_h, min_q, ratios, noise)
        a, b, dd, s, w = np.empty(m_t), np.empty(m_t), np.empty(m_t), np.empty(m_t), np.empty(m_t)
        size = 0
        for row in range(m_t):  # only the rows this resample drew
            if t_rows[row]:
                d = offset
                half_variance = absent
                for k in range(t_indptr[row], t_indptr[row + 1]):
                    d += ratios[t_indices[k]]
                    half_variance += noise[t_indices[k]]
                a[size], b[size] = _weights(d)
                dd[size], s[size] = d, half_variance
                w[size] = t_rows[row]
                size += 1
        out[r] = _solve(a, b, dd, s, w, size, start, extended, corrected)
    return out


@njit(cache=True, parallel=True)
def bootstrap_target(d: np.ndarray, s: np.ndarray, t_owners: np.ndarray, seed: int, resamples: int, start: float,
                     extended: bool, corrected: bool) -> np.ndarray:
    """Estimates (corrected or plain) of `resamples` resamples of the target only, p and q held fixed (d and the
    noise's half-variance s per distinct row)."""
    m = d.size
    a_all, b_all = np.empty(m), np.empty(m)
    for i in range(m):
        a_all[i], b_all[i] = _weights(d[i])
    out = np.empty(resamples)
    for r in prange(resamples):
        state = _stream(seed, r)
        rows = np.empty(m, np.int64)
        _draw_counts(t_owners, rows, state)
        a, b, dd, ss, w = np.empty(m), np.empty(m), np.empty(m), np.empty(m), np.empty(m)
        size = 0
        for row in range(m):
            if rows[row]:
                a[size], b[size], dd[size], ss[size], w[size] = a_all[row], b_all[row], d[row], s[row], rows[row]
                size += 1
        out[r] = _solve(a, b, dd, ss, w, size, start, extended, corrected)
    return out
