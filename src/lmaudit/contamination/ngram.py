"""Word n-gram overlap (the GPT-3 style check): which of an item's n-grams occur in training documents.

Words are case-folded runs of letters and digits, so punctuation and spacing never matter. An item's parts
are its n-grams that no other item of the same task has; an item with fewer than n words is one part, all
its words, when it has at least `min_words` of them (shorter ones are not checked: a few common words occur
everywhere). The score is the fraction of an item's parts found in the corpus; an item is contaminated when
the score reaches `threshold` (default: any part found).

The scan turns a batch's words into ids and hashes every window of ids with numpy (one pass per n-gram
length); only windows whose hash is an n-gram's are compared word for word.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from lmaudit.contamination.corpus import Batch
from lmaudit.contamination.fingerprints import FingerprintTable, WindowHashes, row_hashes
from lmaudit.contamination.items import EvalItem
from lmaudit.contamination.normalize import word_spans, words
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
        self.table = FingerprintTable(row_hashes(self.rows), np.arange(len(rows)))
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
        self.tables = {size: _GramTable([tuple(self.vocab[w] for w in g) for g in grams], [owners[g] for g in grams])
                       for size, grams in sorted(by_size.items())}

    def __getstate__(self) -> dict:
        # Workers scan with the tables and the vocabulary; the n-grams as tuples of words are slow to unpickle.
        return {k: v for k, v in self.__dict__.items() if k != "parts"}

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

    def scan(self, batch: Batch) -> list[Hit]:
        ids: list[int] = []
        starts: list[int] = []
        lookup = self.vocab.get
        for text in batch.texts:
            starts.append(len(ids))
            tokens = words(text)
            ids.extend(map(lookup, tokens, repeat(0, len(tokens))))
            ids.append(0)  # no n-gram holds id 0, so none spans two documents
        hashes = WindowHashes(np.asarray(ids, dtype=np.int64))
        hits = []
        for size, gram_table in self.tables.items():
            positions, rows = gram_table.table.find(hashes.windows(size))
            for position, row in zip(positions.tolist(), rows.tolist()):
                if ids[position:position + size] != gram_table.rows[row].tolist():
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
