"""Corpus-scale counting over the contamination package's corpus readers, in this process, a pool or on Ray.

A corpus is files, globs or folders of JSONL, text or Parquet (optionally gzipped), cut into shards by
`lmaudit.contamination.corpus_shards` / `split_shards` and read by `read_batches`; the group of a document is
the value of one field (read as the readers' id field). Each shard is counted on its own by a pure function and
the shard results are merged in corpus order, so the result is the same for every executor and worker count.

What is counted: every target sentence as the list of its vocabulary words, by group (the MLE's input).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lmaudit.contamination import corpus_shards, read_batches, split_shards
from lmaudit.core.errors import ConfigError, RowError, UnknownNameError
from lmaudit.llmuse.corpus import group_of
from lmaudit.llmuse.matrix import SentenceMatrix, from_index_lists
from lmaudit.llmuse.text import paragraph_sentences
from lmaudit.llmuse.vocabulary import sentence_sets

EXECUTORS = ("local", "ray")
ALL = "all"  # the group of every document when no group field is given


def _apply(function: Callable[[Any], Any], shard: Any) -> Any:
    """A Ray task: Ray's decorator takes plain functions only, so the (partial) function travels as data."""
    return function(shard)


def map_shards(function: Callable[[Any], Any], shards: Sequence[Any], *, executor: str = "local",
               workers: int = 1, progress: bool = True, label: str = "shards") -> list[Any]:
    """[function(shard) for shard in shards], run here, in a spawned process pool or as Ray tasks; in order."""
    if executor not in EXECUTORS:
        raise UnknownNameError("executor", executor, list(EXECUTORS))
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    results: list[Any] = [None] * len(shards)
    with tqdm(total=len(shards), desc=label, unit="shard", disable=not progress, dynamic_ncols=True) as bar:
        if executor == "ray":
            try:
                import ray
            except ImportError as exc:
                raise ConfigError("--executor ray needs Ray: pip install ray") from exc
            if not ray.is_initialized():
                ray.init(include_dashboard=False, log_to_driver=False)  # RAY_ADDRESS's cluster, or a local one
            remote = ray.remote(num_cpus=1)(_apply)
            pending = {remote.remote(function, shard): position for position, shard in enumerate(shards)}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    results[pending.pop(ref)] = ray.get(ref)
                    bar.update(1)
        elif workers == 1 or len(shards) == 1:
            for position, shard in enumerate(shards):
                results[position] = function(shard)
                bar.update(1)
        else:
            # spawn, not fork: a forked child of a process holding threads (numba, torch, tqdm) can deadlock
            with ProcessPoolExecutor(min(workers, len(shards)), mp_context=get_context("spawn")) as pool:
                for position, result in enumerate(pool.map(function, shards)):
                    results[position] = result
                    bar.update(1)
    return results


def _group(shard_path: str, line: int, group_field: str | None, value: str | None, prefix: bool) -> str:
    if group_field is None:
        return ALL
    group = group_of(value, prefix)
    if group is None:
        raise RowError(shard_path, line, group_field, "missing or empty group")
    return group


@dataclass
class SentenceCounts:
    """Per group: every sentence's vocabulary indices (flattened), its length, and the documents read."""

    indices: dict[str, list[np.ndarray]] = field(default_factory=dict)
    documents: Counter = field(default_factory=Counter)

    def absorb(self, other: "SentenceCounts") -> None:
        for group, parts in other.indices.items():
            self.indices.setdefault(group, []).extend(parts)
        self.documents.update(other.documents)

    def matrices(self, width: int) -> dict[str, SentenceMatrix]:
        return {group: from_index_lists(parts, width) for group, parts in sorted(self.indices.items())}


def count_sentences(shard: Any, *, vocabulary: tuple[str, ...], mode: str, text_field: str,
                    group_field: str | None, group_prefix: bool) -> SentenceCounts:
    """One shard's sentences as vocabulary index arrays, by group."""
    index = {w: i for i, w in enumerate(vocabulary)}
    counts = SentenceCounts()
    for batch in read_batches(shard, text_field=text_field, id_field=group_field or "id"):
        sentences, owners = paragraph_sentences(batch.texts)
        sets = sentence_sets(sentences, mode)
        groups = [_group(shard.path, batch.lines[i], group_field, batch.ids[i], group_prefix)
                  for i in range(len(batch.texts))]
        counts.documents.update(groups)
        for words_of, owner in zip(sets, owners):
            found = np.fromiter(sorted(index[w] for w in words_of if w in index), dtype=np.int32)
            counts.indices.setdefault(groups[owner], []).append(found)
    return counts


def corpus_pieces(corpus: Sequence[str | Path], workers: int, piece_bytes: int | None) -> list[Any]:
    shards = corpus_shards(corpus)
    if workers > 1 or piece_bytes:
        total = sum(s.size for s in shards)
        shards = split_shards(shards, piece_bytes or max(4 << 20, total // (4 * workers)))
    return shards


def target_sentences(corpus: Sequence[str | Path], vocabulary: tuple[str, ...], *, mode: str = "all",
                     text_field: str = "text", group_field: str | None = None, group_prefix: bool = False,
                     executor: str = "local", workers: int = 1, piece_bytes: int | None = None,
                     progress: bool = True) -> tuple[dict[str, SentenceMatrix], Counter]:
    """The corpus's sentences per group as matrices over `vocabulary`, and the documents per group."""
    task = functools.partial(count_sentences, vocabulary=tuple(vocabulary), mode=mode, text_field=text_field,
                             group_field=group_field, group_prefix=group_prefix)
    merged = SentenceCounts()
    for part in map_shards(task, corpus_pieces(corpus, workers, piece_bytes), executor=executor, workers=workers,
                           progress=progress, label="counting sentences"):
        merged.absorb(part)
    return merged.matrices(len(vocabulary)), merged.documents
