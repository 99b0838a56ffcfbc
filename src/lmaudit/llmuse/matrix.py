"""Corpora as sparse sentence x word matrices over one vocabulary, with repeated rows stored once.

A sentence is the set of its vocabulary words, so two sentences with the same words are the same row of the
model: `SentenceMatrix` keeps each distinct row once with its multiplicity, and for every original sentence the
row it maps to (what a bootstrap resamples). With a part-of-speech vocabulary most sentences hold zero, one or two
words, and the distinct rows are a small fraction of the sentences.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from lmaudit.core.errors import DataError

_ROW_KEYS = np.random.default_rng(20240229).integers(0, 2**63, size=1 << 20, dtype=np.uint64) * np.uint64(2) + 1


@dataclass(frozen=True)
class SentenceMatrix:
    rows: sparse.csr_matrix  # distinct rows x vocabulary, 0/1 (float64 for the products)
    counts: np.ndarray  # (distinct rows,) how many sentences have each row
    owners: np.ndarray  # (sentences,) the distinct row of each sentence, in corpus order

    @property
    def n(self) -> int:
        return int(self.owners.size)

    @property
    def width(self) -> int:
        return int(self.rows.shape[1])

    def word_counts(self) -> np.ndarray:
        """(V,) sentences containing each word."""
        return np.asarray(self.rows.T @ self.counts.astype(np.float64)).ravel()

    def select(self, sentences: np.ndarray) -> "SentenceMatrix":
        """The matrix of a subset (or resample) of the sentences, given by their positions."""
        return from_rows(self.rows[self.owners[sentences]])

    def take_columns(self, columns: np.ndarray) -> "SentenceMatrix":
        return from_rows(self.rows[self.owners][:, columns])


def from_rows(matrix: sparse.spmatrix) -> SentenceMatrix:
    """Deduplicate the rows of a 0/1 sentence x word matrix (one row per sentence, in order)."""
    csr = sparse.csr_matrix(matrix, dtype=np.float64)
    csr.sum_duplicates()
    csr.sort_indices()
    csr.data[:] = 1.0
    if csr.shape[1] > _ROW_KEYS.size:
        raise DataError(f"a vocabulary of {csr.shape[1]} words is more than {_ROW_KEYS.size} (the row hash table)")
    # A row's key is the sum (mod 2^64) of random odd keys of its words: equal rows have equal keys, and two
    # different rows collide with probability about 2^-64.
    prefix = np.concatenate([[np.uint64(0)], np.cumsum(_ROW_KEYS[csr.indices], dtype=np.uint64)])
    keys = prefix[csr.indptr[1:]] - prefix[csr.indptr[:-1]]
    _, first, owners, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    return SentenceMatrix(csr[first], counts.astype(np.int64), owners.astype(np.int64).ravel())


def from_index_lists(lists: Sequence[Iterable[int]], width: int) -> SentenceMatrix:
    """Rows from each sentence's word indices (duplicates within a sentence count once)."""
    lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    indices = np.fromiter((i for x in lists for i in x), dtype=np.int64, count=int(lengths.sum()))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    return from_rows(sparse.csr_matrix((np.ones(indices.size), indices, indptr), shape=(len(lists), width)))


def from_word_sets(sets: Sequence[Iterable[str]], vocabulary: Sequence[str]) -> SentenceMatrix:
    """Rows from word sets; words outside the vocabulary are dropped."""
    index = {word: i for i, word in enumerate(vocabulary)}
    return from_index_lists([[index[w] for w in s if w in index] for s in sets], len(vocabulary))
