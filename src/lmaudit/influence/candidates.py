"""Candidate filtering: only the training sequences most similar to a query (TF-IDF) are differentiated.

Grosse et al. (2023, section 3.2) score a few thousand TF-IDF candidates per query rather than the whole corpus.
Here the corpus is streamed twice, so memory stays flat for millions of documents: once to count in how many
documents each word occurs, once to rank documents against every query by the cosine of their TF-IDF vectors
(sublinear term frequency, smoothed IDF), keeping the best `top_n` per query in a heap. Those documents are
chunked into sequences, and the sequences are ranked the same way (with the corpus's IDF); the `top_n` best
per query are the candidates, and every query is scored against all of them.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.influence.data import Document, Query, TrainingSequence, chunk_documents

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass
class CandidateSet:
    sequences: list[TrainingSequence]  # the union over queries, in corpus order
    similarity: dict[str, dict[str, float]]  # query id -> sequence id -> TF-IDF cosine (its own candidates)
    documents_scanned: int = 0
    documents_kept: int = 0
    per_query: dict[str, list[str]] = field(default_factory=dict)  # query id -> its candidates, best first


class _Idf:
    def __init__(self, frequencies: Counter, documents: int):
        self.frequencies, self.documents = frequencies, documents

    def weight(self, word: str) -> float:
        return math.log((1 + self.documents) / (1 + self.frequencies.get(word, 0))) + 1.0

    def vector(self, text: str) -> tuple[dict[str, float], float]:
        counts = Counter(words(text))
        vector = {w: (1.0 + math.log(c)) * self.weight(w) for w, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in vector.values()))
        return vector, norm


def _cosines(idf: _Idf, text: str, queries: list[tuple[dict[str, float], float]]) -> list[float]:
    vector, norm = idf.vector(text)
    if norm == 0:
        return [0.0] * len(queries)
    return [sum(q.get(w, 0.0) * v for w, v in vector.items() if w in q) / (norm * q_norm) if q_norm else 0.0
            for q, q_norm in queries]


def tfidf_candidates(queries: Sequence[Query], documents: Callable[[], Iterable[Document]], model: Any,
                     seq_len: int, top_n: int, *, progress: bool = False) -> CandidateSet:
    """The `top_n` most similar training sequences per query; `documents()` streams the corpus (called twice)."""
    if top_n < 1:
        raise ConfigError(f"--candidates must be at least 1, got {top_n}")
    frequencies: Counter = Counter()
    count = 0
    for document in tqdm(documents(), desc="tf-idf: counting words", unit="doc", disable=not progress):
        frequencies.update(set(words(document.text)))
        count += 1
    if count == 0:
        raise DataError("the corpus holds no document: there is nothing to attribute to")
    idf = _Idf(frequencies, count)
    query_vectors = [idf.vector(f"{q.prompt} {q.completion}") for q in queries]
    heaps: list[list[tuple[float, int, Document]]] = [[] for _ in queries]
    for position, document in enumerate(tqdm(documents(), total=count, desc="tf-idf: ranking documents",
                                              unit="doc", disable=not progress)):
        for heap, similarity in zip(heaps, _cosines(idf, document.text, query_vectors)):
            item = (similarity, -position, document)  # ties: the earlier document wins
            if len(heap) < top_n:
                heapq.heappush(heap, item)
            elif item[:2] > heap[0][:2]:
                heapq.heapreplace(heap, item)
    kept = {-item[1]: item[2] for heap in heaps for item in heap}
    sequences = chunk_documents(model, [kept[p] for p in sorted(kept)], seq_len)
    sequence_cosines = [_cosines(idf, model.decode(s.tokens), query_vectors) for s in sequences]
    similarity: dict[str, dict[str, float]] = {}
    per_query: dict[str, list[str]] = {}
    for column, query in enumerate(queries):
        ranked = sorted(range(len(sequences)), key=lambda i: (-sequence_cosines[i][column], i))[:top_n]
        similarity[query.query_id] = {sequences[i].sequence_id: sequence_cosines[i][column] for i in ranked}
        per_query[query.query_id] = [sequences[i].sequence_id for i in ranked]
    chosen = {sid for ids in per_query.values() for sid in ids}
    return CandidateSet([s for s in sequences if s.sequence_id in chosen], similarity, count, len(kept), per_query)
