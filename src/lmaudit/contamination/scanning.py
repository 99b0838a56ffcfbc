"""Scan a corpus against an index of benchmark items, in this process, a local process pool or on Ray.

Every executor runs the same function on each shard (a corpus file, or with several workers a piece of a large
one) and the shard results are merged in corpus order, so the flags do not depend on the executor, the number of
workers or which shard ends first.
"""

from __future__ import annotations

import importlib.metadata
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import partial
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from lmaudit.contamination.corpus import (BATCH_CHARS, PIECE_BYTES, Batch, Shard, corpus_shards, read_batches,
                                          split_shards)
from lmaudit.contamination.items import EvalItem
from lmaudit.contamination.ngram import NgramIndex, NgramParams
from lmaudit.contamination.results import Evidence, Flag, Hit
from lmaudit.contamination.substring import SubstringIndex, SubstringParams
from lmaudit.core.errors import ConfigError, UnknownNameError

EXECUTORS = ("local", "ray")
MIN_PIECE_BYTES = 4 << 20  # smaller pieces would cost more in scheduling than they gain in balance


class Index(Protocol):
    """What the scan needs from a method: find hits in a batch, place a hit in its document, judge an item."""

    method: str
    items: list[EvalItem]
    params: Any  # the method's parameters dataclass

    def scan(self, batch: Batch) -> list[Hit]: ...

    def locate(self, text: str, hit: Hit) -> tuple[int, str]: ...

    def verdict(self, item_index: int, found: set[int]) -> tuple[bool | None, float | None]: ...

    def note(self, item_index: int) -> str: ...


def build_index(method: str, items: Sequence[EvalItem], **params: Any) -> Index:
    """An index of the items for `method` ("substring" or "ngram"); params are the method's parameters."""
    kinds = {"substring": (SubstringIndex, SubstringParams), "ngram": (NgramIndex, NgramParams)}
    if method not in kinds:
        raise UnknownNameError("scan method", method, list(kinds))
    index_type, params_type = kinds[method]
    unknown = sorted(set(params) - set(params_type.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"method {method} does not take {', '.join(unknown)} "
                          f"(it takes {', '.join(params_type.__dataclass_fields__)})")
    if not items:
        raise ConfigError("no items to check")
    return index_type(items, params_type(**params))


@dataclass
class ItemMatches:
    parts: set[int] = field(default_factory=set)
    n_documents: int = 0
    evidence: list[Evidence] = field(default_factory=list)

    def absorb(self, other: "ItemMatches", max_evidence: int) -> None:
        self.parts |= other.parts
        self.n_documents += other.n_documents
        self.evidence.extend(other.evidence[: max(0, max_evidence - len(self.evidence))])


@dataclass
class ShardResult:
    matches: dict[int, ItemMatches]
    documents: int
    text_bytes: int
    seconds: float


def scan_shard(index: Index, shard: Shard, *, text_field: str = "text", id_field: str = "id",
               max_evidence: int = 5, batch_chars: int = BATCH_CHARS,
               on_batch: Callable[[int], None] | None = None) -> ShardResult:
    """Matches of one corpus file: per item, the parts found, the documents and the first `max_evidence`."""
    began = time.perf_counter()
    matches: dict[int, ItemMatches] = {}
    documents = text_bytes = 0
    for batch in read_batches(shard, text_field=text_field, id_field=id_field, batch_chars=batch_chars):
        seen: set[tuple[int, int]] = set()  # (item, doc) pairs already counted in this batch
        for hit in sorted(index.scan(batch), key=lambda h: (h.doc, h.position, h.item, h.part)):
            found = matches.setdefault(hit.item, ItemMatches())
            found.parts.add(hit.part)
            if (hit.item, hit.doc) in seen:
                continue
            seen.add((hit.item, hit.doc))
            found.n_documents += 1
            if len(found.evidence) < max_evidence:
                offset, text = index.locate(batch.texts[hit.doc], hit)
                found.evidence.append(Evidence(batch.doc_id(hit.doc), shard.path, batch.lines[hit.doc], offset, text))
        size = batch.text_bytes
        documents += len(batch.texts)
        text_bytes += size
        if on_batch is not None:
            on_batch(size)
    return ShardResult(matches, documents, text_bytes, time.perf_counter() - began)


@dataclass
class ScanStats:
    files: int
    file_bytes: int  # on disk (compressed where the files are)
    documents: int
    text_bytes: int  # UTF-8 bytes of the document texts: what the MB/s figure counts
    seconds: float  # wall clock, index building included
    index_seconds: float  # building the index of the items (once per scan, whatever the corpus size)
    executor: str
    workers: int

    @property
    def mb_per_s(self) -> float:
        """Corpus throughput: MB of document text per second of scanning (index building excluded)."""
        scanning = self.seconds - self.index_seconds
        return self.text_bytes / 1e6 / scanning if scanning > 0 else float("nan")


@dataclass
class ScanResult:
    flags: list[Flag]
    stats: ScanStats
    method: str
    params: dict[str, Any]
    shards: list[Shard]

    def manifest(self) -> dict[str, Any]:
        """What the flags were computed from: method, parameters, corpus files, executor and throughput."""
        try:
            version = importlib.metadata.version("lmaudit")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return {"method": self.method, "params": self.params, "lmaudit": version,
                "corpus": [{"path": s.path, "format": s.format, "bytes": s.size} for s in self.shards],
                "stats": {**asdict(self.stats), "mb_per_s": round(self.stats.mb_per_s, 3)}}


# The index a pool worker received once at start-up, instead of once per shard.
_WORKER_INDEX: Index | None = None


def _init_worker(index: Index) -> None:
    global _WORKER_INDEX
    _WORKER_INDEX = index


def _pool_task(shard: Shard, options: dict[str, Any]) -> ShardResult:
    assert _WORKER_INDEX is not None
    return scan_shard(_WORKER_INDEX, shard, **options)


class _ShardScanner:
    """A Ray actor's state: the index, unpickled once per actor rather than once per shard."""

    def __init__(self, index: Index):
        self.index = index

    def scan(self, shard: Shard, options: dict[str, Any]) -> ShardResult:
        return scan_shard(self.index, shard, **options)


def _pool_context() -> Any:
    """fork where no other thread runs, spawn otherwise.

    Forked workers start at once, read the parent's index from the pages they share with it (one copy in the
    caches for both) and need no imports or unpickling, which took a spawned worker about 1 CPU-s. Another
    thread could hold a lock at the fork that the child would then wait on forever. tqdm's monitor thread
    (started by the first progress bar, even a disabled one, and left running) is let be: it only takes
    tqdm's own lock, and workers draw no bar."""
    others = [t for t in threading.enumerate() if t is not threading.current_thread() and t.name != "tqdm_monitor"]
    return get_context("fork" if "fork" in get_all_start_methods() and not others else "spawn")


def _run_local(index: Index, shards: list[Shard], workers: int, options: dict[str, Any],
               progress: Callable[[], tqdm]) -> list[ShardResult]:
    if workers == 1 or len(shards) == 1:
        results = []
        with progress() as bar:
            for shard in shards:
                results.append(scan_shard(index, shard, on_batch=bar.update, **options))
                bar.set_postfix_str(f"parts {len(results)}/{len(shards)}")
        return results
    ordered: list[ShardResult | None] = [None] * len(shards)
    with ProcessPoolExecutor(max_workers=min(workers, len(shards)), mp_context=_pool_context(),
                             initializer=_init_worker, initargs=(index,)) as pool:
        # The first submit starts the workers: before the progress bar starts its monitor thread.
        futures = {pool.submit(_pool_task, shard, options): position for position, shard in enumerate(shards)}
        with progress() as bar:
            for done, future in enumerate(as_completed(futures), start=1):
                result = future.result()
                ordered[futures[future]] = result
                bar.update(result.text_bytes)
                bar.set_postfix_str(f"parts {done}/{len(shards)}")
    return ordered  # type: ignore[return-value]


def _run_ray(index: Index, shards: list[Shard], workers: int, options: dict[str, Any],
             progress: Callable[[], tqdm]) -> list[ShardResult]:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--executor ray needs Ray: pip install ray") from exc
    if not ray.is_initialized():
        # Joins the cluster named by RAY_ADDRESS, or starts a local one.
        ray.init(include_dashboard=False, log_to_driver=False)
    index_ref = ray.put(index)
    scanner = ray.remote(num_cpus=1)(_ShardScanner)
    actors = [scanner.remote(index_ref) for _ in range(min(workers, len(shards)))]
    ordered: list[ShardResult | None] = [None] * len(shards)
    queue = list(enumerate(shards))
    running: dict[Any, tuple[int, Any]] = {}  # result ref -> (shard position, actor)
    try:
        with progress() as bar:
            # Each actor scans one shard at a time and gets the next as soon as it is done.
            for actor in actors:
                position, shard = queue.pop(0)
                running[actor.scan.remote(shard, options)] = (position, actor)
            while running:
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    position, actor = running.pop(ref)
                    result = ray.get(ref)
                    ordered[position] = result
                    bar.update(result.text_bytes)
                    bar.set_postfix_str(f"parts {sum(r is not None for r in ordered)}/{len(shards)}")
                    if queue:
                        next_position, shard = queue.pop(0)
                        running[actor.scan.remote(shard, options)] = (next_position, actor)
    finally:
        for actor in actors:
            ray.kill(actor)
    return ordered  # type: ignore[return-value]


def scan_corpus(items: Sequence[EvalItem], corpus: Sequence[str | Path], *, method: str = "substring",
                executor: str = "local", workers: int = 1, text_field: str = "text", id_field: str = "id",
                max_evidence: int = 5, progress: bool = True, piece_bytes: int = PIECE_BYTES,
                **params: Any) -> ScanResult:
    """Flag every item found in the corpus (files, globs or folders), with evidence, and time the scan.

    `params` go to the method: substring takes length, count, min_chars, seed; ngram takes n, min_words,
    threshold. With executor="ray", an already initialised Ray is used as it is; otherwise `ray.init()` joins
    the cluster in RAY_ADDRESS or starts a local one. Every worker must see the corpus files at their paths.
    With several workers, large uncompressed JSONL and text files are shared out in pieces of at most
    `piece_bytes`.
    """
    began = time.perf_counter()
    index = build_index(method, items, **params)
    index_seconds = time.perf_counter() - began
    result = scan_index(index, corpus, executor=executor, workers=workers, text_field=text_field,
                        id_field=id_field, max_evidence=max_evidence, progress=progress, piece_bytes=piece_bytes)
    result.stats.index_seconds = index_seconds
    result.stats.seconds += index_seconds
    return result


def scan_index(index: Index, corpus: Sequence[str | Path], *, executor: str = "local", workers: int = 1,
               text_field: str = "text", id_field: str = "id", max_evidence: int = 5,
               progress: bool = True, piece_bytes: int = PIECE_BYTES) -> ScanResult:
    """scan_corpus with an index built beforehand: one index, several corpora or executors."""
    if executor not in EXECUTORS:
        raise UnknownNameError("executor", executor, list(EXECUTORS))
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if max_evidence < 0:
        raise ConfigError(f"max_evidence must be 0 or more, got {max_evidence}")
    if piece_bytes < 1:
        raise ConfigError(f"piece_bytes must be positive, got {piece_bytes}")
    shards = corpus_shards(corpus)
    began = time.perf_counter()
    pieces = shards
    if workers > 1:  # at most piece_bytes, and small enough that every worker gets about four pieces
        total = sum(s.size for s in shards)
        pieces = split_shards(shards, min(piece_bytes, max(MIN_PIECE_BYTES, total // (4 * workers))))
    options = {"text_field": text_field, "id_field": id_field, "max_evidence": max_evidence}
    bar = partial(tqdm, unit="B", unit_scale=True, unit_divisor=1000, desc=f"{index.method} scan",
                  disable=not progress, dynamic_ncols=True)
    results = (_run_ray if executor == "ray" else _run_local)(index, pieces, workers, options, bar)
    seconds = time.perf_counter() - began

    merged: dict[int, ItemMatches] = {}
    for result in results:
        for item_index, found in result.matches.items():
            merged.setdefault(item_index, ItemMatches()).absorb(found, max_evidence)
    flags = []
    for item_index, item in enumerate(index.items):
        found = merged.get(item_index, ItemMatches())
        contaminated, score = index.verdict(item_index, found.parts)
        flags.append(Flag(item.task, item.sample_id, index.method, contaminated, score, found.n_documents,
                          found.evidence, index.note(item_index)))
    stats = ScanStats(files=len(shards), file_bytes=sum(s.size for s in shards),
                      documents=sum(r.documents for r in results), text_bytes=sum(r.text_bytes for r in results),
                      seconds=seconds, index_seconds=0.0, executor=executor, workers=workers)
    return ScanResult(flags, stats, index.method, asdict(index.params), shards)
