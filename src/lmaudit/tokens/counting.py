"""Counting tokens of a whole parallel corpus, exactly, without encoding every word of it.

A language's text (the items joined with single spaces, as Petrov et al. count) is cut before every space that
follows a non-space character. For a separable tokenizer (tokenizers.py) no token crosses such a cut, so the
text's token count is the sum of its pieces' ("units") counts, each unit encoded on its own. Natural text
repeats its words, so the distinct units of all languages together are far less text than the corpus: each is
counted once per tokenizer, in long native calls, and the totals are gathered back with numpy.

Cutting is done once per corpus and shared by every tokenizer. The units of a text also give per-item (per
sentence) counts that add up exactly to the text's count: a unit belongs to the item holding its first
non-space character. The first and last unit of each text (no leading space; maybe a trailing one) are encoded on
their own. A tokenizer that is not separable (an endpoint, a slow tokenizer) is counted text by text instead.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from lmaudit.tokens import tokenizers as _tokenizers
from lmaudit.tokens.corpora import ParallelCorpus
from lmaudit.tokens.tokenizers import (
    MEASURED_FIELDS,
    SENTINEL,
    HFTokenizer,
    Measured,
    TiktokenTokenizer,
    Tokenizer,
)

# A space that follows a whitespace character: the only places where " "-separated words must stay together.
GLUED = re.compile(r" (?<=\s\s)")


@dataclass
class LanguageCount:
    language: str
    tokenizer: str
    tokens: int  # the joined text's tokens: Petrov et al.'s count
    chars: int
    bytes: int
    unknown_chars: int
    fallback_tokens: int
    item_tokens: np.ndarray  # tokens per item (aligned across languages)
    items_partition: bool  # item_tokens add up to `tokens` (separable), or were each encoded alone


@dataclass
class Segmented:
    """A corpus cut into units: the distinct middle units of all languages, and where each language's units go."""

    corpus: ParallelCorpus
    unique: list[str]  # distinct middle words; the unit of word w is " " + w
    middle: dict[str, np.ndarray]  # language -> index into `unique` of each middle unit, in text order
    edges: dict[str, list[str]]  # language -> [first unit] or [first, last]
    unit_items: dict[str, np.ndarray]  # language -> item index of every unit (edges included), in text order
    total_chars: int
    unique_chars: int


def _leading_spaces(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def words_of(joined: str) -> list[str]:
    """The text cut before every space that follows a non-space character, each piece without that space.

    Piece i > 0 stands for the unit " " + piece. A space that follows whitespace (a double space, a space after a
    no-break space) is not a cut: the words around it are glued into one piece.
    """
    words = joined.split(" ")
    glued, at, position = [], 0, 0
    if joined.startswith(" "):
        glued.append(0)
    for match in GLUED.finditer(joined):
        at += joined.count(" ", position, match.start())
        position = match.start()
        glued.append(at)  # the space numbered `at` sits between words[at] and words[at + 1]
    if not glued:
        return words
    for index in glued:  # in order, so a run of glued words folds into the last one
        if index + 1 < len(words) and words[index] is not None:
            words[index + 1] = words[index] + " " + words[index + 1]
            words[index] = None  # type: ignore[call-overload]
    return [w for w in words if w is not None]


# Whitespace as the widest of the tokenizers' regex engines and Python define it: gluing more is always safe.
_SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace()]


def _arrow_words(joined: str):
    """words_of(joined) as an Arrow array, cut and glued natively (a Python list of millions of words is slow)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    words = pc.split_pattern(pa.array([joined], pa.large_string()), " ").flatten()
    last = pc.utf8_slice_codeunits(words, -1)
    blank_or_spaced = pc.or_(pc.equal(pc.utf8_length(words), 0), pc.is_in(last, pa.array(_SPACES)))
    glued = np.flatnonzero(blank_or_spaced.to_numpy(zero_copy_only=False))
    glued = glued[glued < len(words) - 1]  # the last word has nothing after it to glue to
    if not len(glued):
        return words
    pieces, start = [], 0
    runs = np.split(glued, np.flatnonzero(np.diff(glued) != 1) + 1)
    for run in runs:  # words run[0] .. run[-1] + 1 become one
        first, last = int(run[0]), int(run[-1]) + 1
        pieces.append(words.slice(start, first - start))
        pieces.append(pa.array([" ".join(words.slice(first, last - first + 1).to_pylist())], pa.large_string()))
        start = last + 1
    pieces.append(words.slice(start))
    return pa.concat_arrays(pieces)


def segment(corpus: ParallelCorpus) -> Segmented:
    import pyarrow as pa
    import pyarrow.compute as pc

    # Arrow splits without the GIL: the languages are cut on every core.
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        per_language = dict(zip(corpus.texts, pool.map(_arrow_words, (t.joined for t in corpus.texts.values()))))
    edges = {code: [words[0].as_py()] + ([" " + words[-1].as_py()] if len(words) > 1 else [])
             for code, words in per_language.items()}
    middles = [words.slice(1, max(0, len(words) - 2)) for words in per_language.values()]
    # Distinct middle words over every language at once (hashing in Arrow, not in a Python loop).
    combined = pa.concat_arrays(middles) if middles else pa.array([], pa.large_string())
    encoded = pc.dictionary_encode(combined)
    indices = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    dictionary = encoded.dictionary
    # Lengths and leading spaces of the units " " + word.
    unique_lengths = pc.utf8_length(dictionary).to_numpy(zero_copy_only=False).astype(np.int64) + 1
    unique_leads = unique_lengths - pc.utf8_length(pc.utf8_ltrim(dictionary, characters=" ")).to_numpy(
        zero_copy_only=False).astype(np.int64)
    unique_blank = unique_leads == unique_lengths
    middle_index, unit_items, offset = {}, {}, 0
    total = 0
    for (code, text), middle in zip(corpus.texts.items(), middles):
        index = indices[offset:offset + len(middle)]
        offset += len(middle)
        middle_index[code] = index
        total += len(text.joined)
        first, *last = edges[code]
        lengths = np.concatenate([[len(first)], unique_lengths[index], [len(u) for u in last]]).astype(np.int64)
        lead = np.concatenate([[_leading_spaces(first)], unique_leads[index], [_leading_spaces(u) for u in last]])
        blank = np.concatenate([[not first.strip(" ")], unique_blank[index], [not u.strip(" ") for u in last]])
        unit_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        # A unit belongs to the item of its first non-space character; a blank unit to the item before it.
        anchors = np.where(blank, np.maximum(unit_starts - 1, 0), unit_starts + lead)
        item_lengths = np.fromiter((len(i) + 1 for i in text.items), np.int64, len(text.items))
        item_starts = np.concatenate([[0], np.cumsum(item_lengths)[:-1]])
        unit_items[code] = np.searchsorted(item_starts, anchors, side="right") - 1
    return Segmented(corpus, dictionary.to_pylist(), middle_index, edges, unit_items, total,
                     int(unique_lengths.sum()))


def count(tokenizer: Tokenizer, corpus: ParallelCorpus, segmented: Segmented | None = None) -> dict[str, LanguageCount]:
    """Every language's counts under one tokenizer; `segmented` (the corpus cut, shared by tokenizers) is made
    here when not given and the tokenizer is separable."""
    if not tokenizer.separable:
        return _count_directly(tokenizer, corpus)
    segmented = segmented if segmented is not None and segmented.corpus is corpus else segment(corpus)
    return gather(tokenizer.name, segmented, tokenizer.measure_units(segmented.unique), *measure_edges(
        tokenizer, segmented))


def measure_edges(tokenizer: Tokenizer, segmented: Segmented) -> tuple[Measured, Measured]:
    """The first unit of every language's text, and the last (of those texts that have two or more)."""
    firsts = tokenizer.measure([edges[0] for edges in segmented.edges.values()])
    # A last unit may end in whitespace, so it is counted after a sentinel word and the sentinel's tokens taken
    # off: the cut between them is clean, so the difference is exactly the unit's tokens.
    lasts = [edges[1] for edges in segmented.edges.values() if len(edges) > 1]
    with_sentinel = tokenizer.measure([SENTINEL + unit for unit in lasts])
    sentinel = tokenizer.measure([SENTINEL])
    return firsts, Measured(*(getattr(with_sentinel, f) - getattr(sentinel, f)[0] for f in MEASURED_FIELDS))


def gather(name: str, segmented: Segmented, units: Measured, firsts: Measured,
           last: Measured) -> dict[str, LanguageCount]:
    """Each language's counts from its units' (the distinct middle units, then the edges)."""
    results, at = {}, 0
    for position, (code, text) in enumerate(segmented.corpus.texts.items()):
        index = segmented.middle[code]
        has_last = len(segmented.edges[code]) > 1

        def pick(field: str) -> np.ndarray:
            ends = [getattr(last, field)[at:at + 1]] if has_last else []
            return np.concatenate([getattr(firsts, field)[position:position + 1], getattr(units, field)[index], *ends])

        tokens = pick("tokens")
        item_tokens = np.bincount(segmented.unit_items[code], weights=tokens, minlength=len(text.items))
        joined = text.joined
        results[code] = LanguageCount(code, name, int(tokens.sum()), len(joined), len(joined.encode()),
                                      int(pick("unknown_chars").sum()), int(pick("fallback_tokens").sum()),
                                      item_tokens.astype(np.int64), True)
        at += has_last
    return results


def _count_directly(tokenizer: Tokenizer, corpus: ParallelCorpus) -> dict[str, LanguageCount]:
    """Each joined text in one call, and each item on its own (an endpoint bills a sentence as sent alone)."""
    codes = list(corpus.texts)
    whole = tokenizer.measure([corpus.texts[c].joined for c in codes])
    flat = [item for c in codes for item in corpus.texts[c].items]
    items = tokenizer.measure(flat).tokens
    results = {}
    for position, code in enumerate(codes):
        text = corpus.texts[code]
        joined = text.joined
        start = position * len(text.items)
        results[code] = LanguageCount(code, tokenizer.name, int(whole.tokens[position]), len(joined),
                                      len(joined.encode()), int(whole.unknown_chars[position]),
                                      int(whole.fallback_tokens[position]),
                                      items[start:start + len(text.items)].astype(np.int64), False)
    return results


# What forked workers count: set just before the pool forks, so they inherit it instead of unpickling it.
_WORK: tuple[dict[str, Tokenizer], Segmented] | None = None


def _single_threaded() -> None:
    # The workers fill the cores themselves; the libraries' own threads would only contend with them.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _tokenizers.THREADS = 1


@dataclass
class _Part:
    """One worker task: a tokenizer's units[start:stop], and the texts' edge units with the first part."""

    spec: str
    start: int
    stop: int
    first: bool


def _measure_part(part: _Part) -> tuple[_Part, Measured, tuple[Measured, Measured] | None, float]:
    assert _WORK is not None
    tokenizers, segmented = _WORK
    tokenizer = tokenizers[part.spec]
    began = time.perf_counter()
    units = tokenizer.measure_units(segmented.unique[part.start:part.stop])
    edges = measure_edges(tokenizer, segmented) if part.first else None
    return part, units, edges, time.perf_counter() - began


def _on_tiktoken(tokenizer: Tokenizer) -> bool:
    return isinstance(tokenizer, TiktokenTokenizer) or (isinstance(tokenizer, HFTokenizer)
                                                         and tokenizer.engine == "tiktoken")


def _parts(tokenizers: dict[str, Tokenizer], segmented: Segmented, workers: int) -> list[_Part]:
    """Tokenizers off tiktoken's engine are the slow ones (several times slower per character): each is cut into
    `workers` parts of equal characters, sent first, so that the workers finish together; those on tiktoken's
    engine follow whole."""
    lengths = np.fromiter(map(len, segmented.unique), np.int64, len(segmented.unique))
    cuts = np.searchsorted(np.cumsum(lengths), lengths.sum() * np.arange(1, workers) / workers).tolist()
    bounds = list(zip([0, *cuts], [*cuts, len(lengths)]))
    slow = [spec for spec, t in tokenizers.items() if not _on_tiktoken(t)]
    fast = [spec for spec in tokenizers if spec not in slow]
    return [_Part(spec, start, stop, index == 0) for spec in slow for index, (start, stop) in enumerate(bounds)] + [
        _Part(spec, 0, len(lengths), True) for spec in fast]


def _count_here(tokenizers: dict[str, Tokenizer], corpus: ParallelCorpus,
                segmented: Segmented | None) -> Iterator[tuple[str, dict[str, LanguageCount], float]]:
    for spec, tokenizer in tokenizers.items():
        began = time.perf_counter()
        yield spec, count(tokenizer, corpus, segmented), time.perf_counter() - began


def count_all(tokenizers: dict[str, Tokenizer], corpus: ParallelCorpus,
              segmented: Segmented | None = None) -> Iterator[tuple[str, dict[str, LanguageCount], float]]:
    """(spec, counts, seconds) of every tokenizer, each as soon as it is counted.

    With several cores, separable tokenizers are counted in forked worker processes, one per core and each
    single-threaded: the libraries' batch calls scale poorly over threads and leave the numpy work between them
    on one core. The slow ones are shared out in parts (`_parts`), and a tokenizer's counts are gathered here
    when its last part is in. Other tokenizers (an endpoint holds a client) are counted here.
    """
    global _WORK
    local = {spec: t for spec, t in tokenizers.items() if not t.separable}
    forked = {spec: t for spec, t in tokenizers.items() if t.separable}
    workers = os.cpu_count() or 1
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        local, forked = tokenizers, {}
    yield from _count_here(local, corpus, segmented)
    if not forked:
        return
    segmented = segmented if segmented is not None and segmented.corpus is corpus else segment(corpus)
    parts = _parts(forked, segmented, workers)
    if len(parts) < 2:  # one tokenizer on tiktoken's engine: nothing to share out
        yield from _count_here(forked, corpus, segmented)
        return
    expected = Counter(part.spec for part in parts)
    done: dict[str, list[tuple[_Part, Measured, tuple[Measured, Measured] | None, float]]] = defaultdict(list)
    _WORK = (forked, segmented)
    pool = multiprocessing.get_context("fork").Pool(min(workers, len(parts)), initializer=_single_threaded)
    try:
        for result in pool.imap_unordered(_measure_part, parts):
            spec = result[0].spec
            done[spec].append(result)
            if len(done[spec]) < expected[spec]:
                continue
            pieces = sorted(done.pop(spec), key=lambda r: r[0].start)
            units = Measured.concat([units for _, units, _, _ in pieces], len(segmented.unique))
            edges = next(e for _, _, e, _ in pieces if e is not None)
            yield spec, gather(forked[spec].name, segmented, units, *edges), sum(r[3] for r in pieces)
    finally:
        pool.terminate()
        pool.join()  # reaps the workers, so their CPU time counts as this process's children's
        _WORK = None
