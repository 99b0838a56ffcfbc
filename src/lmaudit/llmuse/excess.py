"""Excess vocabulary (after Kobak et al. 2024): words whose frequency jumps past its projection, and a lower
bound on the share of documents an LLM touched. Needs no AI corpus.

Frequencies are shares of documents containing a word. With one reference period the projection of a word's
frequency is its reference frequency; with two (earlier, later) it continues the trend when the word was rising,
q = p_later + gap * max(p_later - p_earlier, 0), gap = periods from later to target / from earlier to later.
A word is in excess when p - q >= min_gap or p / q >= min_ratio (with at least `min_documents` target documents),
and the jump is beyond noise: its z-score (p - q over its binomial standard error) passes the Bonferroni bound for
the number of words tested at level 0.05, so a corpus compared with itself shows (almost) no excess words.

For a set S of marker words, if a share L of target documents was LLM-processed and every such document shows a
marker, p_S = q_S + L (1 - q_S), so L = (p_S - q_S) / (1 - q_S) bounds the processed share from below (p_S, q_S:
documents with at least one marker, observed and projected). Choosing S on the same documents that measure L
would bias L upward (noise words that happen to jump get chosen), so the documents of every period are split in
two halves (seeded): markers are chosen on one, L is measured on the other, and its interval resamples that half.
Markers named in advance (`markers=`, e.g. style words known from other corpora) need no selection: L is measured
on all documents. Where the two periods differ in topic (other fields, other venues), topic words jump too and
the bound from selected markers measures that shift, not LLM use; named style markers are then the usable bound.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import norm

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.llmuse.mle import Interval


@dataclass(frozen=True)
class ExcessSettings:
    min_ratio: float = 2.0
    min_gap: float = 0.01
    min_documents: int = 10
    resamples: int = 1000
    seed: int = 0

    def check(self) -> None:
        if self.min_ratio <= 1 or self.min_gap <= 0 or self.min_documents < 1 or self.resamples < 20:
            raise ConfigError("excess settings need min_ratio > 1, min_gap > 0, min_documents >= 1, "
                              "resamples >= 20")


@dataclass(frozen=True)
class ExcessWord:
    word: str
    documents: int  # target documents containing the word
    frequency: float  # p: share of target documents
    projected: float  # q
    gap: float  # p - q
    ratio: float  # p / q (inf when q is 0)
    gap_ci: Interval
    excess: bool


@dataclass(frozen=True)
class ExcessResult:
    words: list[ExcessWord]  # every word with at least min_documents target documents, largest gap first
    markers: list[str]  # the marker words: chosen on the selection half, or named in advance
    lower_bound: float  # L on the measurement half
    ci: Interval
    marker_frequency: float  # p_S on the measurement half
    marker_projected: float  # q_S
    n_reference: int
    n_target: int
    periods: list[str]

    def summary(self) -> dict:
        raw = asdict(self)
        raw.pop("words")
        return raw


def _frequencies(docs: Sequence[frozenset[str]]) -> tuple[int, Counter]:
    counter: Counter = Counter()
    for doc in docs:
        counter.update(doc)
    return len(docs), counter


def _project(later: np.ndarray, earlier: np.ndarray | None, gap: float) -> np.ndarray:
    if earlier is None:
        return later
    return later + gap * np.maximum(later - earlier, 0.0)


def _shares(docs: Sequence[frozenset[str]], words: list[str]) -> np.ndarray:
    n, counter = _frequencies(docs)
    return np.array([counter[w] for w in words], dtype=np.float64) / max(n, 1)


def _is_excess(p: np.ndarray, q: np.ndarray, n_target: int, n_reference: int,
               settings: ExcessSettings) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(q > 0, p / np.where(q > 0, q, 1.0), np.inf)
        spread = np.sqrt(p * (1 - p) / n_target + q * (1 - q) / n_reference)
        z = np.where(spread > 0, (p - q) / np.where(spread > 0, spread, 1.0), 0.0)
    beyond_noise = z >= norm.isf(0.05 / max(p.size, 1))
    return beyond_noise & ((p - q >= settings.min_gap) | (ratio >= settings.min_ratio))


def _halves(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def excess_vocabulary(reference: Sequence[frozenset[str]], target: Sequence[frozenset[str]],
                      settings: ExcessSettings = ExcessSettings(), *,
                      earlier: Sequence[frozenset[str]] | None = None, gap: float = 1.0,
                      periods: Sequence[str] = (), markers: Sequence[str] | None = None) -> ExcessResult:
    """Documents as word sets: the reference period (and optionally an earlier one) and the target period;
    `markers` fixes the marker words instead of choosing them."""
    settings.check()
    for name, docs in (("reference", reference), ("target", target), ("earlier reference", earlier)):
        if docs is not None and len(docs) < 4:
            raise DataError(f"the {name} period has {len(docs)} documents; excess vocabulary needs at least 4")
    rng = np.random.default_rng(settings.seed)
    n_target, target_counts = _frequencies(target)
    candidates = sorted(w for w, c in target_counts.items() if c >= settings.min_documents)
    if not candidates:
        raise DataError(f"no word is in {settings.min_documents} or more target documents")
    p = _shares(target, candidates)
    q = _project(_shares(reference, candidates), None if earlier is None else _shares(earlier, candidates), gap)
    excess = _is_excess(p, q, n_target, len(reference), settings)
    gap_ci = _gap_intervals(rng, p, n_target, reference, earlier, gap, candidates, settings.resamples)

    if markers is not None:
        chosen_markers = sorted(set(markers))
        measure = [reference, target, earlier]
    else:  # markers from one half of every period, the bound from the other half
        halves = [(_halves(rng, len(docs)) if docs is not None else None) for docs in (reference, target, earlier)]

        def pick(docs, split, side):
            return [docs[i] for i in split[side]] if docs is not None else None

        sel_ref, sel_target, sel_earlier = (pick(d, h, 0) for d, h in zip((reference, target, earlier), halves))
        p_sel = _shares(sel_target, candidates)
        q_sel = _project(_shares(sel_ref, candidates),
                         None if sel_earlier is None else _shares(sel_earlier, candidates), gap)
        chosen = _is_excess(p_sel, q_sel, len(sel_target), len(sel_ref), settings)
        chosen_markers = [w for w, keep in zip(candidates, chosen) if keep]
        measure = [pick(d, h, 1) for d, h in zip((reference, target, earlier), halves)]
    bound, ci, p_s, q_s = _lower_bound(rng, set(chosen_markers), measure, gap, settings.resamples)

    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(q > 0, p / np.where(q > 0, q, 1.0), np.inf)
    words = [ExcessWord(w, int(target_counts[w]), float(p[i]), float(q[i]), float(p[i] - q[i]), float(ratios[i]),
                        gap_ci[i], bool(excess[i])) for i, w in enumerate(candidates)]
    words.sort(key=lambda x: (-x.gap, x.word))
    return ExcessResult(words, chosen_markers, bound, ci, p_s, q_s, len(reference) + len(earlier or []), n_target,
                        list(periods))


def _gap_intervals(rng: np.random.Generator, p: np.ndarray, n_target: int, reference, earlier, gap: float,
                   words: list[str], resamples: int) -> list[Interval]:
    """95% intervals of p - q per word: counts are binomial, so resampling documents is a binomial draw."""
    ref = _shares(reference, words)
    p_star = rng.binomial(n_target, p, size=(resamples, p.size)) / n_target
    later = rng.binomial(len(reference), ref, size=(resamples, p.size)) / len(reference)
    if earlier is None:
        q_star = later
    else:
        early = rng.binomial(len(earlier), _shares(earlier, words), size=(resamples, p.size)) / len(earlier)
        q_star = _project(later, early, gap)
    low, high = np.percentile(p_star - q_star, [2.5, 97.5], axis=0)
    return [Interval(float(a), float(b)) for a, b in zip(low, high)]


def _lower_bound(rng: np.random.Generator, markers: set[str], periods: list, gap: float,
                 resamples: int) -> tuple[float, Interval, float, float]:
    """L with its interval, p_S and q_S, from the (reference, target, earlier or None) documents."""
    if not markers:
        return 0.0, Interval(0.0, 0.0), 0.0, 0.0
    shares = [None if docs is None else float(np.mean([bool(doc & markers) for doc in docs])) for docs in periods]
    sizes = [None if docs is None else len(docs) for docs in periods]

    def bound(p_s, q_ref, q_early):
        q_s = _project(q_ref, q_early, gap)
        return (p_s - q_s) / np.maximum(1.0 - q_s, 1e-12), q_s

    value, q_s = bound(np.array(shares[1]), np.array(shares[0]), None if shares[2] is None else np.array(shares[2]))
    draws = [None if s is None else rng.binomial(n, s, size=resamples) / n for s, n in zip(shares, sizes)]
    replicates, _ = bound(draws[1], draws[0], draws[2])
    low, high = np.percentile(replicates, [2.5, 97.5])
    return float(value), Interval(float(low), float(high)), float(shares[1]), float(q_s)
