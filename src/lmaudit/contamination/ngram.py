"""Word n-gram overlap (the GPT-3 style check): which of an item's n-grams occur in training documents.

Words are case-folded runs of letters and digits, so punctuation and spacing never matter. An item's parts
are its n-grams that no other item of the same task has; an item with fewer than n words is one part, all
its words, when it has at least `min_words` of them (shorter ones are not checked: a few common words occur
everywhere). The score is the fraction of an item's parts found in the corpus; an item is contaminated when
the score reaches `threshold` (default: any part found).

The scan cuts a whole batch into words in a few C passes (normalize.spaced_words) and hashes every word and
every window of words with numpy (fingerprints.token_hashes, WindowHashes), with no Python object per word. One
table finds the windows of the shortest n-gram length whose hash is the start of an n-gram; only those whose
whole hash is that n-gram's are compared word for word.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lmaudit.contamination.corpus import Batch
from lmaudit.contamination.fingerprints import FilteredTable, WindowHashes, row_hashes, token_hashes
from lmaudit.contamination.items import EvalItem
from lmaudit.contamination.normalize import SEPARATOR, spaced_words, word_spans, words
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


class _Grams:
    """The distinct n-grams of at most n words as rows of word ids (zero-padded to n), found in text by the hash of
    their first `prefix` words (the shortest n-gram's length), then checked by the hash of all their words."""

    def __init__(self, rows: list[tuple[int, ...]], owners: list[list[tuple[int, int]]], word_hashes: np.ndarray,
                 n: int):
        self.sizes = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        self.prefix = int(self.sizes.min(initial=n))
        self.rows = np.array([row + (0,) * (n - len(row)) for row in rows], dtype=np.int32).reshape(-1, n)
        hashes = word_hashes[self.rows]  # id 0, the padding, hashes to 0: it adds nothing to a row's hash
        self.table = FilteredTable(row_hashes(hashes[:, :self.prefix]), np.arange(len(rows)))
        self.hashes = row_hashes(hashes)
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
        # The hash of each word as the scan computes it from text, by id; id 0 (no word, the padding) hashes to 0.
        word_hashes = np.zeros(len(self.vocab) + 1, dtype=np.uint64)
        spaced = [word.encode("utf-8") for word in self.vocab]
        self.longest = max(map(len, spaced), default=0)
        word_hashes[1:] = token_hashes(b" ".join(spaced), self.longest)[2]
        self._byte_vocab: dict[bytes, int] | None = None
        self.grams = _Grams([tuple(self.vocab[w] for w in g) for g in owners], list(owners.values()), word_hashes,
                             params.n)

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
        """The vocabulary keyed by UTF-8, as spaced_words gives words."""
        if self._byte_vocab is None:
            self._byte_vocab = {word.encode("utf-8"): i for word, i in self.vocab.items()}
        return self._byte_vocab

    def scan(self, batch: Batch) -> list[Hit]:
        spaced = spaced_words(batch.utf8()[0])
        starts, ends, word_hashes = token_hashes(spaced, self.longest)
        hashes = WindowHashes(word_hashes)
        grams = self.grams
        positions, rows = grams.table.find(hashes.windows(grams.prefix))
        sizes = grams.sizes[rows]
        whole = positions + sizes <= len(word_hashes)
        positions, rows, sizes = positions[whole], rows[whole], sizes[whole]
        same = hashes.spans(positions, positions + sizes) == grams.hashes[rows]
        if not same.any():
            return []
        separators = np.flatnonzero(np.frombuffer(spaced, dtype=np.uint8)[starts] == SEPARATOR[0])
        doc_starts = [0, *(separators + 1).tolist()]
        word_ids = self._word_ids()
        hits = []
        for position, row, size in zip(positions[same].tolist(), rows[same].tolist(), sizes[same].tolist()):
            found = [word_ids.get(spaced[b:e], 0) for b, e in zip(starts[position:position + size].tolist(),
                                                                  ends[position:position + size].tolist())]
            if found != grams.rows[row, :size].tolist():
                continue  # a fingerprint collision
            doc = bisect.bisect_right(doc_starts, position) - 1
            for k in range(grams.owner_start[row], grams.owner_start[row + 1]):
                hits.append(Hit(grams.owner_item[k], grams.owner_part[k], doc, position - doc_starts[doc]))
        return hits

    def locate(self, text: str, hit: Hit) -> tuple[int, str]:
        spans = word_spans(text)
        size = self.part_sizes[hit.item][hit.part]
        begin, end = spans[hit.position][1], spans[hit.position + size - 1][2]
        return begin, text[begin:end]
