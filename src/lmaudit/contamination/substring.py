"""The GPT-4 report's substring check, indexed so a corpus is scanned in one vectorised pass.

Each item's normalised text (letters and digits, case-folded) gives up to `count` random `length`-character
substrings, or the whole text when it is shorter; the item is contaminated when any of them occurs in a
normalised training document. Items with fewer than `min_chars` characters are not checked: a few letters
("keynes", "inflation") occur in unrelated text, so a match would say nothing about leakage.

How the scan is fast: a pattern of at least L bytes that occurs in the text covers L - m + 1 consecutive
window starts, so looking only at the m-byte windows that start at multiples of the stride L - m + 1 still
meets every occurrence in one of its own m-byte pieces. Every m-byte piece of every pattern (its "anchors")
is fingerprinted once; the text side fingerprints one window per stride with numpy, a FingerprintTable keeps
the few windows whose fingerprint is an anchor's, and only those are compared byte for byte. Long
patterns (full-length substrings) and short ones (whole short items) get a pass each, with their own stride.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lmaudit.contamination.corpus import Batch
from lmaudit.contamination.fingerprints import FilteredTable, WindowHashes
from lmaudit.contamination.items import EvalItem
from lmaudit.contamination.normalize import normalize, normalize_joined, normalize_mapped, text_starts
from lmaudit.contamination.results import Hit
from lmaudit.core.errors import ConfigError

_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)
_SHORT_TAIL = bytes(8)  # lets windows under 8 bytes read a whole word past the end of the text


def _fingerprints(data: bytes, count: int, stride: int, m: int) -> np.ndarray:
    """64-bit fingerprints of the m-byte windows of `data` starting at 0, stride, 2*stride, ...

    A window's 8-byte words (the last one ending at the window's end, overlapping the one before it), each
    times its own odd constant, xored: one multiply per word and no masking, straight from unaligned views of
    the bytes. Windows under 8 bytes take one word with the bytes past the window masked off; `data` then
    needs 8 spare bytes at its end."""
    def words(offset: int) -> np.ndarray:
        return np.ndarray((count,), dtype="<u8", buffer=data, offset=offset, strides=(stride,))

    if m < 8:
        return (words(0) & np.uint64((1 << (8 * m)) - 1)) * _MIX[0]
    offsets = list(range(0, m - 7, 8)) + ([m - 8] if m % 8 else [])
    fingerprints = words(0) * _MIX[0]
    for column, offset in enumerate(offsets[1:], start=1):
        fingerprints ^= words(offset) * _MIX[column]
    return fingerprints


class _Pass:
    """One stride over the text for patterns of at least `min_len` bytes."""

    def __init__(self, patterns: list[bytes], ids: list[int]):
        self.min_len = min(len(p) for p in patterns)
        # Long anchors are rarely met by chance; the stride they leave must still be >= 1.
        self.m = max(1, min(24, self.min_len - max(1, self.min_len // 4)))
        self.stride = self.min_len - self.m + 1
        fps, owners, offsets = [], [], []
        by_length: dict[int, list[int]] = {}
        for position, pattern in enumerate(patterns):
            by_length.setdefault(len(pattern), []).append(position)
        for length, members in by_length.items():
            # Every window of the patterns laid end to end, then only those inside one pattern.
            joined = b"".join(patterns[i] for i in members)
            starts = np.arange(len(joined) - self.m + 1)
            inside = starts % length <= length - self.m
            if self.m < 8:
                joined += _SHORT_TAIL
            fps.append(_fingerprints(joined, len(starts), 1, self.m)[inside])
            owners.append(np.asarray([ids[i] for i in members], dtype=np.int64)[starts[inside] // length])
            offsets.append(starts[inside] % length)
        self.owner = np.concatenate(owners)
        self.offset = np.concatenate(offsets)
        self.table = FilteredTable(np.concatenate(fps), np.arange(len(self.owner)))

    def candidates(self, text: bytes) -> list[tuple[int, int]]:
        """(pattern id, start) for every window of the text whose fingerprint is an anchor's; still to be
        verified."""
        rows = (len(text) - self.m) // self.stride + 1
        if rows <= 0:
            return []
        if self.m < 8:
            text += _SHORT_TAIL
        windows, entries = self.table.find(_fingerprints(text, rows, self.stride, self.m))
        return list(zip(self.owner[entries].tolist(), (windows * self.stride - self.offset[entries]).tolist()))


def shared_windows(texts: list[str], length: int) -> list[np.ndarray]:
    """For each text, whether each of its `length`-character windows also occurs in another of the texts.

    Windows are compared by the hash of their code points; a collision could only make a window look shared,
    which costs a choice, never a wrong flag.
    """
    codes = [np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32) for t in texts]
    sizes = np.array([len(c) for c in codes])
    if not len(texts) or sizes.max() < length:
        return [np.zeros(max(0, n - length + 1), dtype=bool) for n in sizes]
    hashes = WindowHashes(np.concatenate(codes)).windows(length)
    owner = np.repeat(np.arange(len(texts)), sizes)
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    inside = np.arange(len(hashes)) - offsets[owner[: len(hashes)]] <= sizes[owner[: len(hashes)]] - length
    keys, owners = hashes[inside], owner[: len(hashes)][inside]
    # Sort by hash; a run of equal hashes is shared when it holds more than one text.
    order = np.argsort(keys)
    sorted_keys, sorted_owners = keys[order], owners[order]
    run_starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    mixed = np.minimum.reduceat(sorted_owners, run_starts) != np.maximum.reduceat(sorted_owners, run_starts)
    flags = np.empty(len(keys), dtype=bool)
    flags[order] = np.repeat(mixed, np.diff(np.concatenate((run_starts, [len(keys)]))))
    bounds = np.concatenate(([0], np.cumsum(np.maximum(sizes - length + 1, 0))))
    return [flags[bounds[i]:bounds[i + 1]] for i in range(len(texts))]


@dataclass(frozen=True)
class SubstringParams:
    length: int = 50
    count: int = 3
    min_chars: int = 20
    seed: int = 0


class SubstringIndex:
    method = "substring"

    def __init__(self, items: Sequence[EvalItem], params: SubstringParams = SubstringParams()):
        if params.length < 1 or params.count < 1 or params.min_chars < 1:
            raise ConfigError(f"substring length, count and min_chars must be positive, got {params}")
        if params.min_chars > params.length:
            raise ConfigError(f"min_chars ({params.min_chars}) cannot exceed the substring length ({params.length})")
        self.items = list(items)
        self.params = params
        normalised = [normalize(item.text) for item in self.items]
        self.lengths = [len(text) for text in normalised]
        shared: list[np.ndarray | None] = [None] * len(self.items)
        by_task: dict[str, list[int]] = {}
        for position, item in enumerate(self.items):
            by_task.setdefault(item.task, []).append(position)
        for members in by_task.values():
            for position, flags in zip(members, shared_windows([normalised[i] for i in members], params.length)):
                shared[position] = flags
        self.parts = [self._choose(item, text, flags) for item, text, flags in zip(self.items, normalised, shared)]
        self.patterns: list[bytes] = []
        self.owners: list[list[tuple[int, int]]] = []  # pattern id -> (item, part) pairs that use it
        seen: dict[bytes, int] = {}
        for item_index, parts in enumerate(self.parts):
            for part_index, part in enumerate(parts):
                pattern = part.encode("utf-8")
                if pattern not in seen:
                    seen[pattern] = len(self.patterns)
                    self.patterns.append(pattern)
                    self.owners.append([])
                self.owners[seen[pattern]].append((item_index, part_index))
        length_bytes = params.length
        long_ids = [i for i, p in enumerate(self.patterns) if len(p) >= length_bytes]
        short_ids = [i for i, p in enumerate(self.patterns) if len(p) < length_bytes]
        self.passes = [_Pass([self.patterns[i] for i in ids], ids) for ids in (long_ids, short_ids) if ids]

    def _choose(self, item: EvalItem, text: str, shared: np.ndarray | None) -> list[str]:
        length = self.params.length
        if len(text) < self.params.min_chars:
            return []
        if len(text) <= length:
            return [text]
        # Draw from the windows no other item of the task has: MMLU's moral_scenarios items open with the
        # same 150-character preamble, and a substring of it would match every one of them. An item with no
        # window of its own (a duplicate) draws from all its windows.
        starts = [s for s in range(len(text) - length + 1) if shared is None or not shared[s]]
        starts = starts or list(range(len(text) - length + 1))
        # Seeded by the item's key, so the draw does not depend on the order items are indexed in.
        rng = random.Random(f"{self.params.seed}\x00{item.task}\x00{item.sample_id}")
        chosen = sorted(rng.sample(starts, min(self.params.count, len(starts))))
        return [text[s:s + length] for s in chosen]

    def note(self, item_index: int) -> str:
        if self.parts[item_index]:
            return ""
        return (f"not checked: {self.lengths[item_index]} letters/digits, fewer than min_chars="
                f"{self.params.min_chars}")

    def verdict(self, item_index: int, found: set[int]) -> tuple[bool | None, float | None]:
        total = len(self.parts[item_index])
        if total == 0:
            return None, None
        return bool(found), len(found) / total

    def scan(self, batch: Batch) -> list[Hit]:
        """Every occurrence of every pattern in the batch's documents."""
        buffer = normalize_joined(batch.utf8()[0])
        occurrences: set[tuple[int, int]] = set()
        for scan_pass in self.passes:
            for pattern_id, start in scan_pass.candidates(buffer):
                pattern = self.patterns[pattern_id]
                if start >= 0 and buffer[start:start + len(pattern)] == pattern:
                    occurrences.add((pattern_id, start))
        if not occurrences:
            return []
        starts = text_starts(buffer)
        hits = []
        for pattern_id, start in sorted(occurrences, key=lambda o: (o[1], o[0])):
            doc = int(np.searchsorted(starts, start, side="right")) - 1
            char_offset = len(buffer[int(starts[doc]):start].decode("utf-8"))
            for item_index, part_index in self.owners[pattern_id]:
                hits.append(Hit(item_index, part_index, doc, char_offset))
        return hits

    def locate(self, text: str, hit: Hit) -> tuple[int, str]:
        """Offset and original text of a hit: the span whose normalised form is the matched substring."""
        _, positions = normalize_mapped(text)
        length = len(self.parts[hit.item][hit.part])
        begin = positions[hit.position]
        end = positions[hit.position + length - 1] + 1
        return begin, text[begin:end]
