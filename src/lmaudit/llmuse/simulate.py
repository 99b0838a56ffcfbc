"""Corpora drawn from known P and Q (independent Bernoulli word occurrences), for checking the estimators.

`sample_sentences` draws an exact Bernoulli(p_w) sentence x word matrix without touching every cell: for each word
the gaps between the sentences that contain it are geometric, so the cost is the number of occurrences, not
sentences x vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.special import expit, logit


@dataclass(frozen=True)
class WordModel:
    """Occurrence probabilities of each vocabulary word in human (p) and AI-modified (q) sentences."""

    p: np.ndarray
    q: np.ndarray

    @property
    def size(self) -> int:
        return int(self.p.size)


def word_model(vocabulary: int = 2000, *, seed: int = 0, rarest: float = 5e-4, commonest: float = 0.05,
               shift: float = 0.6) -> WordModel:
    """p log-uniform between `rarest` and `commonest` (about 21 words per sentence for 2,000 words); q moves each
    word's log-odds by a normal shift of standard deviation `shift` (LLM text favours some words, avoids others)."""
    rng = np.random.default_rng(seed)
    p = 10.0 ** rng.uniform(np.log10(rarest), np.log10(commonest), size=vocabulary)
    q = expit(logit(p) + rng.normal(0.0, shift, size=vocabulary))
    return WordModel(p, q)


def sample_sentences(rng: np.random.Generator, probabilities: np.ndarray, n: int) -> sparse.csr_matrix:
    """An n x V 0/1 matrix whose cell (i, w) is 1 with probability probabilities[w], independently."""
    words = np.arange(probabilities.size)
    rows_out, cols_out = [], []
    while words.size:
        p = probabilities[words]
        mean = n * p
        draws = np.ceil(mean + 8.0 * np.sqrt(mean) + 16.0).astype(np.int64)
        gaps = rng.geometric(np.repeat(p, draws))
        ends = np.cumsum(draws)
        totals = np.cumsum(gaps)
        before = np.concatenate([[0], totals[ends[:-1] - 1]])
        positions = totals - np.repeat(before, draws) - 1
        finished = positions[ends - 1] >= n  # the word's draws went past the last sentence: all found
        keep = np.repeat(finished, draws) & (positions < n)
        rows_out.append(positions[keep])
        cols_out.append(np.repeat(words, draws)[keep])
        words = words[~finished]  # rare: draw those words again, from scratch, with the same rule
    rows, cols = np.concatenate(rows_out), np.concatenate(cols_out)
    return sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, probabilities.size))


def sample_mixture(rng: np.random.Generator, model: WordModel, n: int, share: float) -> sparse.csr_matrix:
    """n target sentences of which round(share * n) come from Q, the rest from P (rows shuffled)."""
    n_ai = int(round(share * n))
    matrix = sparse.vstack([sample_sentences(rng, model.p, n - n_ai), sample_sentences(rng, model.q, n_ai)])
    return sparse.csr_matrix(matrix)[rng.permutation(n)]
