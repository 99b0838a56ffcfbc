"""Text normalisation shared by every method, in a fast form for scanning and a mapped form for evidence.

Normalised text is the case-folded text with everything but letters and digits removed (a character is kept
when `str.isalnum()` is true, in any script). `normalize_batch` is the hot path of a corpus scan; `fold_map` gives
the same case-folded text with the index of the original character behind every folded one, so a match found
in normalised text can be reported at its offset in the original document.
"""

from __future__ import annotations

import functools
import re

import numpy as np

# [^\W_] is exactly the set of characters for which str.isalnum() is true.
ALNUM_RUN = re.compile(r"[^\W_]+")
_UPPER_TO_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_ASCII_SYMBOLS = bytes(c for c in range(1, 128) if not chr(c).isalnum())  # all but NUL, the separator
SEPARATOR = b"\x00"
# Non-ASCII bytes closer than this are folded as one stretch; what lies between them is already folded ASCII
# (letters, digits, NUL), which folding leaves as it is.
_STRETCH_GAP = 64
# An ASCII symbol, so folded bytes hold none: it delimits the stretches while they are folded together.
_STRETCH_MARK = b"\x01"


@functools.cache
def _kept_code_points() -> np.ndarray:
    """For every code point, whether folding a stretch keeps it: letters and digits, NUL (a stretch may span the
    NUL between two texts) and the mark. One table lookup per character is 5x faster than a regex over
    non-ASCII text; building it takes about 0.1 s, once per process."""
    kept = np.fromiter((chr(c).isalnum() for c in range(0x110000)), dtype=bool, count=0x110000)
    kept[[0, _STRETCH_MARK[0]]] = True
    return kept


def _fold_stretches(folded: bytes) -> bytes:
    """Case-fold and filter the stretches of `folded` that hold non-ASCII characters, all in one pass:
    joined by the mark, decoded, folded and filtered as one string, then split apart and put back."""
    high = np.flatnonzero(np.frombuffer(folded, dtype=np.uint8) >= 0x80)
    breaks = np.flatnonzero(np.diff(high) > _STRETCH_GAP)
    begins = np.concatenate(([high[0]], high[breaks + 1])).tolist()
    ends = (np.concatenate((high[breaks], [high[-1]])) + 1).tolist()
    # surrogatepass: JSON escapes can leave lone surrogates; they are symbols, and the table drops them.
    joined = _STRETCH_MARK.join([folded[b:e] for b, e in zip(begins, ends)]).decode("utf-8", "surrogatepass")
    code_points = np.frombuffer(joined.casefold().encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    kept = code_points[_kept_code_points()[code_points]].tobytes().decode("utf-32-le")
    stretches = kept.encode("utf-8").split(_STRETCH_MARK)
    pieces: list[bytes] = [b""] * (2 * len(stretches) + 1)
    pieces[0::2] = [folded[e:b] for e, b in zip([0, *ends], [*begins, len(folded)])]
    pieces[1::2] = stretches
    return b"".join(pieces)


def normalize_batch(texts: list[str]) -> tuple[bytes, np.ndarray, int]:
    """Normalised UTF-8 of the texts joined by NUL, where each text starts, and the texts' UTF-8 size.

    ASCII is case-folded and filtered by one byte-table pass over the whole batch; only the stretches of
    bytes around non-ASCII characters left after it (a few quotes, dashes or accented words in most text) are
    decoded, case-folded and filtered. Case folding works character by character, so folding stretches gives
    the same as folding whole texts.
    """
    nuls = sum(text.count("\x00") for text in texts) if any("\x00" in text for text in texts) else 0
    if nuls:  # NUL is a symbol, so dropping it first changes nothing but frees it to separate texts
        texts = [text.replace("\x00", "") for text in texts]
    # surrogatepass: JSON escapes can leave lone surrogates in a str; they are symbols and are dropped.
    raw = SEPARATOR.join([text.encode("utf-8", "surrogatepass") for text in texts])
    size = len(raw) - max(0, len(texts) - 1) + nuls
    folded = raw.translate(_UPPER_TO_LOWER, _ASCII_SYMBOLS)
    if size - nuls > sum(map(len, texts)):  # some text has a non-ASCII character
        folded = _fold_stretches(folded)
    starts = np.concatenate(([0], np.flatnonzero(np.frombuffer(folded, dtype=np.uint8) == 0) + 1))
    return folded, starts, size


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
