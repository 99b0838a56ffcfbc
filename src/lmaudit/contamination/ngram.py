"""Word n-gram overlap (the GPT-3 style check): which of an item's n-grams occur in training documents.

Words are case-folded runs of letters and digits, so punctuation and spacing never matter. An item's parts
are its n-grams that no other item of the same task has; an item with fewer than n words is one part, all
its words, when it has at least `min_words` of them (shorter ones are not checked: a few common words occur
everywhere). The score is the fraction of an item's parts found in the corpus; an item is contaminated when
the score reaches `threshold` (default: any part found).

The scan cuts a whole batch into words in a few C passes (normalize.spaced_words), turns them into ids with one
dictionary lookup each, and hashes every window of ids with numpy (one pass per n-gram length); only windows
whose hash is an n-gram's are compared id for id.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from lmaudit.contamination.corpus import Batch
from lmaudit.contamination.fingerprints import FilteredTable, WindowHashes, row_hashes
from lmaudit.contamination.items import EvalItem
from lmaudit.contamination.normalize import (
    SEPARATOR,
    spaced_words,
    word_spans,
    words,
)
from lmaudit.contamination.results import Hit
from lmaudit.core.errors import ConfigError

Gram = tuple[str, ...]


@dataclass(frozen=True)
class NgramParams:
    n: int = 13
    min_words: int = 8
    threshold: float = 0.0  # contaminated when the found fraction is above 0 and at least this


def _grams(tokens: Sequence[str], size: int) -> zip:
    """All runs of `size` consecutive tokens, built in C by zipping shifted views."""
    return zip(*(tokens[k:] for k in range(size)))


class _GramTable:
    """The distinct n-grams of one length as rows of word ids, found in text by their window hashes."""

    def __init__(self, rows: list[tuple[int, ...]], owners: list[list[tuple[int, int]]]):
        self.rows = np.asarray(rows, dtype=np.int32)
        self.table = FilteredTable(row_hashes(self.rows), np.arange(len(rows)))
        counts = [len(o) for o in owners]
        self.owner_start = np.concatenate(([0], np.cumsum(counts))).tolist()
        self.owner_item = [item for o in owners for item, _ in o]
        self.owner_part = [part for o in owners for _, part in o]


class NgramIndex:
    method = "ngram"

    def __init__(self, items: Sequence[EvalItem], params: NgramParams = NgramParams()):
        if params.n < 1 or params.min_words < 1 or not 0.0 <= params.threshold <= 1.0:
            raise ConfigError(f"ngram n and min_words must be positive and threshold in [0, 1], got {params}")
        self.items = list(items)
        self.params = params
        self.word_counts: list[int] = []
        candidates: list[list[Gram]] = []
        for item in self.items:
            tokens = words(item.text)
            self.word_counts.append(len(tokens))
            if len(tokens) >= params.n:
                candidates.append(list(dict.fromkeys(_grams(tokens, params.n))))
            elif len(tokens) >= min(params.min_words, params.n):
                candidates.append([tuple(tokens)])
            else:
                candidates.append([])
        # As with substrings, an item's parts are the n-grams no other item of its task has (a shared
        # preamble would tie every item to one leaked item); an item with none of its own keeps them all.
        tasks: dict[str, Counter[Gram]] = {}
        for item, grams in zip(self.items, candidates):
            tasks.setdefault(item.task, Counter()).update(grams)
        self.parts: list[list[Gram]] = [[g for g in grams if tasks[item.task][g] == 1] or grams
                                        for item, grams in zip(self.items, candidates)]
        self.part_sizes = [[len(g) for g in grams] for grams in self.parts]
        # Words become ids (0: a word no n-gram has) and n-grams rows of ids, one table per n-gram length.
        self.vocab: dict[str, int] = {}
        owners: dict[Gram, list[tuple[int, int]]] = {}
        for item_index, grams in enumerate(self.parts):
            for part_index, gram in enumerate(grams):
                owners.setdefault(gram, []).append((item_index, part_index))
                for word in gram:
                    self.vocab.setdefault(word, len(self.vocab) + 1)
        by_size: dict[int, list[Gram]] = {}
        for gram in owners:
            by_size.setdefault(len(gram), []).append(gram)
        self._byte_vocab: dict[bytes, int] | None = None
        self.tables = {size: _GramTable([tuple(self.vocab[w] for w in g) for g in grams], [owners[g] for g in grams])
                       for size, grams in sorted(by_size.items())}

    def __getstate__(self) -> dict:
        # Workers scan with the tables and the vocabulary; the n-grams as tuples of words are slow to unpickle.
        return {k: v for k, v in self.__dict__.items() if k not in ("parts", "_byte_vocab")} | {"_byte_vocab": None}

    def note(self, item_index: int) -> str:
        if self.part_sizes[item_index]:
            return ""
        return f"not checked: {self.word_counts[item_index]} words, fewer than min_words={self.params.min_words}"

    def verdict(self, item_index: int, found: set[int]) -> tuple[bool | None, float | None]:
        total = len(self.part_sizes[item_index])
        if total == 0:
            return None, None
        score = len(found) / total
        return bool(found) and score >= self.params.threshold, score

    def _word_ids(self) -> dict[bytes, int]:
        """The vocabulary keyed by UTF-8, as spaced_words gives words, and the separator between texts as -1."""
        if self._byte_vocab is None:
            self._byte_vocab = {word.encode("utf-8"): i for word, i in self.vocab.items()}
            self._byte_vocab[SEPARATOR] = -1
        return self._byte_vocab

    def scan(self, batch: Batch) -> list[Hit]:
        tokens = spaced_words(batch.utf8()[0]).split()
        ids = np.fromiter(map(self._word_ids().get, tokens, repeat(0, len(tokens))), dtype=np.int64,
                          count=len(tokens))
        separators = np.flatnonzero(ids < 0)
        ids[separators] = 0  # no n-gram holds id 0, so none spans two documents
        starts = [0, *(separators + 1).tolist()]
        hashes = WindowHashes(ids)
        hits = []
        for size, gram_table in self.tables.items():
            positions, rows = gram_table.table.find(hashes.windows(size))
            for position, row in zip(positions.tolist(), rows.tolist()):
                if not np.array_equal(ids[position:position + size], gram_table.rows[row]):
                    continue  # a fingerprint collision
                doc = bisect.bisect_right(starts, position) - 1
                for k in range(gram_table.owner_start[row], gram_table.owner_start[row + 1]):
                    hits.append(Hit(gram_table.owner_item[k], gram_table.owner_part[k], doc, position - starts[doc]))
        return hits

    def locate(self, text: str, hit: Hit) -> tuple[int, str]:
        spans = word_spans(text)
        size = self.part_sizes[hit.item][hit.part]
        begin, end = spans[hit.position][1], spans[hit.position + size - 1][2]
        return begin, text[begin:end]
