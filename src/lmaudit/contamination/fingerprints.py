"""64-bit fingerprints for the indexes: polynomial window hashes, hashes of a text's words, and a table that
finds the text's windows whose fingerprint is an indexed one. A fingerprint match is only a candidate: callers
compare the real bytes or words, so a collision costs a comparison, never a wrong flag.
"""

from __future__ import annotations

import functools

import numpy as np

BASE = 0x100000001B3  # odd, so invertible modulo 2**64
_LOW_BYTES = np.array([(1 << 8 * k) - 1 for k in range(9)], dtype=np.uint64)  # masks of the low k bytes
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd
_BITMAP_BITS = 26  # 8 MiB: with ~1M keys about 1.5% of lookups get past it to the sorted array
_CACHED_POWERS = 1 << 20  # 16 MiB with the inverses: more than the 0.5-0.7M words of a batch of BATCH_CHARS of prose


def _powers(count: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE**(t+1) and its inverse modulo 2**64 for t < count."""
    with np.errstate(over="ignore"):
        return (np.cumprod(np.full(count, BASE, dtype=np.uint64)),
                np.cumprod(np.full(count, pow(BASE, -1, 1 << 64), dtype=np.uint64)))


@functools.cache
def _cached_powers() -> tuple[np.ndarray, np.ndarray]:
    return _powers(_CACHED_POWERS)


def _powers_of_base(count: int) -> tuple[np.ndarray, np.ndarray]:
    """_powers(count), from one table per process up to _CACHED_POWERS (the scans hash every batch's words)."""
    if count > _CACHED_POWERS:
        return _powers(count)
    powers, inverses = _cached_powers()
    return powers[:count], inverses[:count]


class WindowHashes:
    """sum(values[i + j] * BASE**j for j < length) mod 2**64 for every window start i, any length, with numpy.

    The prefix sums of values[t] * BASE**(t+1) differ by BASE**(i+1) times window i's hash; multiplying by
    BASE**-(i+1) (BASE is odd, so it has an inverse modulo 2**64) leaves the hash itself. The prefix sums are
    computed once and serve every window length.
    """

    def __init__(self, values: np.ndarray):
        powers, self.inverse = _powers_of_base(len(values))
        self.prefix = np.empty(len(values) + 1, dtype=np.uint64)
        self.prefix[0] = 0
        terms = self.prefix[1:]  # the products, then their sums, in place: no temporary array
        with np.errstate(over="ignore"):
            np.multiply(values, powers, out=terms, dtype=np.uint64, casting="unsafe")  # as astype(uint64)
            np.cumsum(terms, out=terms)

    def windows(self, length: int) -> np.ndarray:
        count = len(self.prefix) - length
        if count <= 0:
            return np.zeros(0, dtype=np.uint64)
        with np.errstate(over="ignore"):
            hashes = self.prefix[length:] - self.prefix[:count]
            return np.multiply(hashes, self.inverse[:count], out=hashes)

    def spans(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """The hash of values[starts[k]:ends[k]] for every k, each span non-empty."""
        with np.errstate(over="ignore"):
            return (self.prefix[ends] - self.prefix[starts]) * self.inverse[starts]


def token_hashes(data: bytes, longest: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, hashes) of the tokens of `data`, its maximal runs of bytes other than the space, each hashed
    on its first `longest` bytes rounded up to a multiple of 8 (a longer token can be no word of a vocabulary
    whose longest word has `longest` bytes, so the bytes past them need not be read).

    A token is read 8 bytes at a time, as little-endian words from an unaligned view of the bytes, the last one
    masked to the token's end: one gather for every token, then one for each token longer than 8 bytes (a fifth
    of English words), 16 and so on. The hash chains its words by multiply and xor; the work is a few passes
    per token, not per byte."""
    padded = b"".join((b" ", data, b" " * 8))  # a space before and after: every token has two edges; 8 to read
    inside = np.frombuffer(padded, dtype=np.uint8) != 32
    # int32 positions where they fit (any batch of BATCH_CHARS) halve what every later pass reads and writes.
    edges = np.flatnonzero(inside[1:] != inside[:-1]).astype(np.int32 if len(padded) < 1 << 31 else np.int64)
    edges = edges.reshape(-1, 2)
    starts, ends = edges[:, 0], edges[:, 1]
    lengths = ends - starts
    view = np.ndarray((len(data) + 1,), dtype="<u8", buffer=padded, offset=1, strides=(1,))  # view[i]: data[i:i+8]
    hashes = view[starts]
    # mode="clip" reads the mask of 8 bytes for longer tokens, with no np.minimum pass.
    hashes &= _LOW_BYTES.take(lengths, mode="clip")
    longer = np.flatnonzero(lengths > 8)
    with np.errstate(over="ignore"):
        for skip in range(8, longest, 8):
            longer = longer[lengths[longer] > skip]
            if not len(longer):
                break
            words = view[starts[longer] + skip] & _LOW_BYTES.take(lengths[longer] - skip, mode="clip")
            hashes[longer] = hashes[longer] * _MIX ^ words
        hashes ^= hashes >> np.uint64(29)
        hashes *= _MIX
    return starts, ends, hashes


def row_hashes(rows: np.ndarray) -> np.ndarray:
    """The window hash of each row of a 2-D array, the row being the whole window."""
    powers = np.ones(rows.shape[1], dtype=np.uint64)
    with np.errstate(over="ignore"):
        powers[1:] = np.cumprod(np.full(rows.shape[1] - 1, BASE, dtype=np.uint64))
        return (rows.astype(np.uint64) * powers).sum(axis=1, dtype=np.uint64)


def _bitmap(slots: np.ndarray, bits: int) -> np.ndarray:
    """A bit for each of the 2**bits slots, set for the given ones; bit k of byte j is slot 8*j + k."""
    bitmap = np.zeros(1 << (bits - 3), dtype=np.uint8)
    np.bitwise_or.at(bitmap, slots >> np.uint64(3), np.left_shift(1, slots & np.uint64(7)).astype(np.uint8))
    return bitmap


def _bits_set(bitmap: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Whether each slot's bit is set in a _bitmap, as 0 or 1 (uint8)."""
    # Indexes as int64 views: numpy would convert uint64 ones first, which costs as much as the gather.
    slots = slots.view(np.int64)
    return (bitmap[slots >> 3] >> (slots & 7).astype(np.uint8)) & 1


class FingerprintTable:
    """Sorted fingerprints, each with a value; a bitmap of their top bits answers most misses in one probe."""

    def __init__(self, keys: np.ndarray, values: np.ndarray):
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.values = values[order]
        self._fill_bitmap()

    def _fill_bitmap(self) -> None:
        self.bitmap = _bitmap(self.keys >> np.uint64(64 - _BITMAP_BITS), _BITMAP_BITS)

    def __getstate__(self) -> dict:
        # Workers rebuild the 8 MiB bitmap from the keys rather than receive it.
        return {"keys": self.keys, "values": self.values}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._fill_bitmap()

    def find(self, fingerprints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions, values): every position whose fingerprint is a key, once per value stored under it."""
        passed = np.flatnonzero(_bits_set(self.bitmap, fingerprints >> np.uint64(64 - _BITMAP_BITS)))
        low = np.searchsorted(self.keys, fingerprints[passed], side="left")
        high = np.searchsorted(self.keys, fingerprints[passed], side="right")
        counts = high - low
        positions = np.repeat(passed, counts)
        # Entry k of a run of equal keys: low of its position plus its rank within the run.
        ranks = np.arange(len(positions)) - np.repeat(np.cumsum(counts) - counts, counts)
        return positions, self.values[np.repeat(low, counts) + ranks]


class FilteredTable(FingerprintTable):
    """A FingerprintTable behind a bit per slot of the fingerprints' top bits, sized to the keys (about 3% of
    slots set, 8 KiB to 2 MiB). One gather sets most non-keys apart: the scans look up several times as many
    windows as ever match. A bit, not a byte, per slot keeps the filter in cache: MMLU's 357k n-gram keys need
    2 MiB of bits, where bytes took 16 MiB whose random reads missed the caches."""

    def _fill_bitmap(self) -> None:
        super()._fill_bitmap()
        bits = int(min(24, max(16, np.ceil(np.log2(32 * max(1, len(self.keys)))))))
        self.shift = np.uint64(64 - bits)
        self.filter = _bitmap(self.keys >> self.shift, bits)

    def find(self, fingerprints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        passed = np.flatnonzero(_bits_set(self.filter, fingerprints >> self.shift))
        positions, values = super().find(fingerprints[passed])
        return passed[positions], values
