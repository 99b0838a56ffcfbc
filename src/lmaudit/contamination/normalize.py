"""Text normalisation shared by every method, in a fast form for scanning and a mapped form for evidence.

Normalised text is the case-folded text with everything but letters and digits removed (a character is kept
when `str.isalnum()` is true, in any script). `normalize_batch` is the hot path of a corpus scan; `fold_map` gives
the same case-folded text with the index of the original character behind every folded one, so a match found
in normalised text can be reported at its offset in the original document.
"""

from __future__ import annotations

import functools
import re
from itertools import repeat

import numpy as np

# [^\W_] is exactly the set of characters for which str.isalnum() is true.
ALNUM_RUN = re.compile(r"[^\W_]+")
# join_utf8 puts this byte between texts: UTF-8 never holds it, so a text's own NULs stay apart from it.
JOINER = b"\xff"
# For normalised text: ASCII case-folded, the joiner the separator NUL; every ASCII symbol (NUL too) dropped.
_ASCII_FOLD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ" + JOINER, b"abcdefghijklmnopqrstuvwxyz\x00")
_ASCII_SYMBOLS = bytes(c for c in range(128) if not chr(c).isalnum())
# For words: ASCII case-folded, every ASCII symbol (NUL too) a space, the joiner the separator NUL.
_ASCII_WORDS = bytes(0 if c == JOINER[0] else c + 32 if 65 <= c <= 90 else 32 if c < 128 and not chr(c).isalnum()
                     else c for c in range(256))
SEPARATOR = b"\x00"  # between texts in normalised and spaced text
# Stretches to fold are found in blocks of this many bytes; the ASCII they take in is already folded (letters,
# digits, NUL), which folding leaves as it is.
_BLOCK = 16
# An ASCII symbol, so folded bytes hold none: it delimits the stretches while they are folded together.
_STRETCH_MARK = b"\x01"


@functools.cache
def _kept_code_points() -> np.ndarray:
    """For every code point, whether folding a stretch keeps it: letters and digits, NUL (a stretch may span the
    NUL between two texts) and the mark. One table lookup per character is 5x faster than a regex over
    non-ASCII text. Built from the runs of letters and digits in the string of all code points (one regex
    pass, about 0.1 s loaded; a call of str.isalnum per code point took 0.3 s), once per process and worker."""
    kept = np.zeros(0x110000, dtype=bool)
    every = np.arange(0x110000, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")
    for run in ALNUM_RUN.finditer(every):
        kept[run.start():run.end()] = True
    kept[[0, _STRETCH_MARK[0]]] = True
    return kept


def _stretches(folded: bytes) -> tuple[list[int], list[int]]:
    """Begins and ends of the stretches of `folded` that hold its non-ASCII bytes: runs of 16-byte blocks with
    a byte >= 0x80, merged across one clean block (blocks of 16 bring in less ASCII than blocks of 64 did: the
    fold took 15-20% less time). The block before and after a run is all ASCII, so no character is cut.
    Testing 8 bytes at a time costs an eighth of a per-byte test."""
    whole = len(folded) // _BLOCK * _BLOCK
    words = np.frombuffer(folded, dtype=np.uint64, count=whole // 8).reshape(-1, _BLOCK // 8)
    merged = words[:, 0].copy()
    for column in range(1, _BLOCK // 8):
        merged |= words[:, column]
    dirty = (merged & np.uint64(0x8080808080808080)) != 0
    if whole < len(folded):  # the last, partial block
        dirty = np.append(dirty, not folded[whole:].isascii())
    blocks = np.flatnonzero(dirty)
    breaks = np.flatnonzero(np.diff(blocks) > 2)
    begins = (np.concatenate((blocks[:1], blocks[breaks + 1])) * _BLOCK).tolist()
    ends = np.minimum((np.concatenate((blocks[breaks], blocks[-1:])) + 1) * _BLOCK, len(folded)).tolist()
    return begins, ends


def _fold_stretches(folded: bytes, spaces: bool = False) -> bytes:
    """Case-fold and filter the stretches of `folded` that hold non-ASCII characters, all in one pass:
    joined by the mark, decoded, folded and filtered as one string, then split apart and put back.
    Characters other than letters and digits are dropped, or with `spaces` replaced by a space."""
    begins, ends = _stretches(folded)
    # surrogatepass: JSON escapes can leave lone surrogates; they are symbols, and the table drops them.
    joined = _STRETCH_MARK.join([folded[b:e] for b, e in zip(begins, ends)]).decode("utf-8", "surrogatepass")
    code_points = np.frombuffer(joined.casefold().encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    keep = _kept_code_points()[code_points]
    code_points = np.where(keep, code_points, np.uint32(32)) if spaces else code_points[keep]
    kept = code_points.tobytes().decode("utf-32-le")
    stretches = kept.encode("utf-8").split(_STRETCH_MARK)
    pieces: list[bytes] = [b""] * (2 * len(stretches) + 1)
    pieces[0::2] = [folded[e:b] for e, b in zip([0, *ends], [*begins, len(folded)])]
    pieces[1::2] = stretches
    return b"".join(pieces)


def join_utf8(texts: list[str]) -> tuple[bytes, int]:
    """The UTF-8 of the texts joined by JOINER, and the texts' UTF-8 size.

    Each text is encoded on its own: a string of one byte per character encodes by a copy, where the joined
    string would take the widest character of the batch. The joiner cannot occur in UTF-8, so texts keep their
    NULs (symbols: normalising drops them, words are split at them)."""
    # surrogatepass: JSON escapes can leave lone surrogates in a str; they are symbols and are dropped.
    raw = JOINER.join(map(str.encode, texts, repeat("utf-8"), repeat("surrogatepass")))
    return raw, len(raw) - max(0, len(texts) - 1)


def normalize_joined(raw: bytes) -> bytes:
    """Normalised text of join_utf8's output: each text's letters and digits, case-folded, NUL between texts.

    ASCII is case-folded and filtered by one byte-table pass over the whole batch; only the stretches of
    bytes around non-ASCII characters left after it (a few quotes, dashes or accented words in most text) are
    decoded, case-folded and filtered. Case folding works character by character, so folding stretches gives
    the same as folding whole texts.
    """
    folded = raw.translate(_ASCII_FOLD, _ASCII_SYMBOLS)
    return folded if folded.isascii() else _fold_stretches(folded)


def text_starts(normalised: bytes) -> np.ndarray:
    """Where each text starts in normalised (or spaced) text: after every separator."""
    return np.concatenate(([0], np.flatnonzero(np.frombuffer(normalised, dtype=np.uint8) == 0) + 1))


def spaced_words(raw: bytes) -> bytes:
    """join_utf8's output case-folded, with every character but letters and digits a space and b" \\x00 "
    between two texts: its split() is the UTF-8 of the words `words` gives for each text, with b"\\x00"
    between texts. A few C passes over the whole batch."""
    spaced = raw.translate(_ASCII_WORDS)
    if not spaced.isascii():
        spaced = _fold_stretches(spaced, spaces=True)
    return spaced.replace(SEPARATOR, b" \x00 ")


def normalize_batch(texts: list[str]) -> tuple[bytes, np.ndarray, int]:
    """Normalised UTF-8 of the texts with NUL between them, where each text starts, and the texts' UTF-8 size."""
    raw, size = join_utf8(texts)
    folded = normalize_joined(raw)
    return folded, text_starts(folded), size


def normalize(text: str) -> str:
    """The case-folded text with only letters and digits left."""
    return normalize_batch([text])[0].decode("utf-8")


def fold_map(text: str) -> tuple[str, list[int]]:
    """text.casefold() and, for each of its characters, the index of the original character it came from."""
    folded: list[str] = []
    source: list[int] = []
    for index, char in enumerate(text):
        piece = char.casefold()  # case folding is per character (unlike lower(), it has no final-sigma rule)
        folded.append(piece)
        source.extend([index] * len(piece))
    return "".join(folded), source


def normalize_mapped(text: str) -> tuple[str, list[int]]:
    """The normalised text as str and, for each of its characters, its index in the original text."""
    folded, source = fold_map(text)
    kept: list[str] = []
    positions: list[int] = []
    for run in ALNUM_RUN.finditer(folded):
        kept.append(run.group())
        positions.extend(source[run.start():run.end()])
    return "".join(kept), positions


def words(text: str) -> list[str]:
    """Case-folded words: maximal runs of letters and digits."""
    return ALNUM_RUN.findall(text.casefold())


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """Each case-folded word with the start and end offsets of its characters in the original text."""
    folded, source = fold_map(text)
    return [(run.group(), source[run.start()], source[run.end() - 1] + 1) for run in ALNUM_RUN.finditer(folded)]
