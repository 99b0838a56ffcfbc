"""RunSession: the one runner every model call goes through.

A session owns a run directory for one command: it takes the directory's writer lock, checks that a resumed
run has the same identity, writes the manifest, and answers requests through the response cache in chunks.

Invariants, in the order they are kept:
1. A response is in the cache before any caller sees it; a streaming backend's responses are cached one by one,
   as they arrive, so a kill loses at most the requests in flight.
2. The manifest's entry for this invocation is written when the session opens and updated before every chunk is
   sent: a killed run's manifest counts every call it made, including the chunk it died in.
3. results.json is written last (`finish`), as strict JSON in the shared results envelope.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lmaudit.core.errors import ConfigError
from lmaudit.core.output import strict
from lmaudit.core.redact import redact, redact_data
from lmaudit.core.types import LoglikelihoodRequest, Request, Response, request_key, response_from_dict, to_dict
from lmaudit.models.base import MeteredModel, Model, StreamingModel, require_white_box
from lmaudit.runner.cache import ResponseCache, default_cache_path
from lmaudit.runner.rundir import MANIFEST, RESULTS, RunDir

TARGET_CHUNK_SECONDS = 10.0  # how much model work a kill may lose, and how often progress is saved
# (first chunk, largest chunk) per request kind: generation is slow per request, log-likelihood fast.
CHUNK_LIMITS = {"loglikelihood": (64, 4096), "generate": (8, 256), "token_logprobs": (16, 1024)}
KIND_ORDER = ("loglikelihood", "token_logprobs", "generate")

AnswerCallback = Callable[[str, Response], None]


def _chunk_end(requests: Sequence[Request], start: int, size: int) -> int:
    """Where the chunk that begins at `start` ends: after `size` requests, or up to twice that while the next
    log-likelihood request shares most of its context with the chunk's last one. Requests sorted by content keep
    a few-shot prompt's questions together; a boundary between them makes the backend run their shared prefix
    twice, and leaves a small remainder to score (about a tenth of 5-shot MMLU's work in 20-question subjects)."""
    end = min(len(requests), start + size)
    while end < min(len(requests), start + 2 * size) and _share_context(requests[end - 1], requests[end]):
        end += 1
    return end


def _share_context(a: Request, b: Request) -> bool:
    if not (isinstance(a, LoglikelihoodRequest) and isinstance(b, LoglikelihoodRequest)):
        return False
    shared = len(os.path.commonprefix([a.context, b.context]))
    return shared >= 0.5 * min(len(a.context), len(b.context))


def jsonable(value: Any) -> Any:
    """Plain strict-JSON data (NaN -> null), as the run files store it."""
    return json.loads(json.dumps(strict(value), sort_keys=True))


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("lmaudit", "numpy", "torch", "transformers", "openai"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def default_run_dir(name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)[:60]}"


@dataclass
class ModelRole:
    """A model in a session under a role name: "target" for most commands; "attacker", "judge" in red-teaming."""

    role: str
    model: Model
    spec: str | None = None

    def describe(self) -> dict[str, Any]:
        spec = redact(self.spec) if self.spec else self.spec  # a URL credential never reaches the manifest
        return {"spec": spec, "name": self.model.name, "fingerprint": self.model.fingerprint()}


class RunSession:
    def __init__(self, run: RunDir, cache: ResponseCache, roles: dict[str, ModelRole], manifest: dict[str, Any],
                 *, progress: bool):
        self.run, self.cache, self.roles, self.manifest, self.progress = run, cache, roles, manifest, progress
        self.fingerprints = {role: r.model.fingerprint() for role, r in roles.items()}
        self.sent = {role: 0 for role in roles}  # requests this invocation sent to each role's model
        self.hits = {role: 0 for role in roles}  # and answered from the cache
        self._started = time.perf_counter()
        self._invocation = {"started": datetime.now(timezone.utc).isoformat(), "seconds": 0.0,
                            "requests_sent": {}, "cache_hits": {}, "finished": False}
        manifest["invocations"].append(self._invocation)
        self._save_manifest()

    # -- opening --------------------------------------------------------------------------------------
    @classmethod
    def open(cls, output_dir: str | Path | None, *, kind: str, identity: dict[str, Any],
             roles: Sequence[ModelRole] = (), command: list[str] | None = None,
             options: dict[str, Any] | None = None, dataset_hashes: dict[str, str] | None = None,
             cache_path: str | Path | None = None, shared_cache: bool = True, progress: bool = True,
             name: str | None = None) -> "RunSession":
        """Open (or resume) a run directory. `identity` is what a resumed run must share with the one it continues.

        The response cache is shared across runs (`~/.cache/lmaudit/responses.sqlite`, or `cache_path`) unless
        `shared_cache` is False, in which case the run keeps its own inside its directory.
        """
        by_role = {r.role: r for r in roles}
        first = roles[0] if roles else None
        default_name = name or (first.model.name if first else None) or (first.spec if first else None) or kind
        run = RunDir(output_dir or default_run_dir(default_name))
        run.lock()
        try:
            identity = jsonable({"kind": kind, **identity,
                                 "models": {role: r.model.fingerprint() for role, r in by_role.items()}})
            previous = run.read_json(MANIFEST)
            if previous is not None and previous.get("identity") != identity:
                old = previous.get("identity", {})
                differing = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
                raise ConfigError(f"{run.path} holds a different run (differs in: {', '.join(differing)}); "
                                  f"use a new --output-dir, or the same settings to resume it")
            manifest = previous or {
                "created": datetime.now(timezone.utc).isoformat(),
                "kind": kind,
                "command": redact_data(command if command is not None else sys.argv),  # no URL credential stored
                "model": by_role[first.role].describe() if first else None,
                "models": {role: r.describe() for role, r in by_role.items()},
                "identity": identity,
                "options": redact_data(jsonable(options or {})),
                "seed": identity.get("seed"),
                "versions": package_versions(),
                "dataset_hashes": dataset_hashes or {},
                "invocations": [],
            }
            cache = ResponseCache(cache_path or (default_cache_path() if shared_cache else run.path / "cache.sqlite"))
        except BaseException:
            run.unlock()
            raise
        return cls(run, cache, by_role, manifest, progress=progress)

    def __enter__(self) -> "RunSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- model calls ----------------------------------------------------------------------------------
    def call(self, role: str, requests: Sequence[Request], *, label: str | None = None,
             on_answer: AnswerCallback | None = None,
             after_chunk: Callable[[], None] | None = None) -> list[Response]:
        """Answer `requests` with the role's model, through the cache; duplicates are asked once.

        `on_answer(key, response)` runs for every distinct request as its answer becomes available (cached
        answers first), so a caller can finish samples while later chunks are still running; `after_chunk()` runs
        after the cached answers and after every chunk (the place to save finished work).
        """
        if role not in self.roles:
            raise ConfigError(f"this run has no {role} model (it has: {', '.join(self.roles) or 'none'})")
        model, fingerprint = self.roles[role].model, self.fingerprints[role]
        keys = [request_key(r) for r in requests]
        unique = dict(zip(keys, requests))
        answers = {key: response_from_dict(raw) for key, raw in self.cache.get_many(fingerprint, unique).items()}
        self.hits[role] += len(answers)
        if on_answer is not None:
            for key, answer in answers.items():
                on_answer(key, answer)
        if after_chunk is not None:
            after_chunk()
        todo = [key for key in unique if key not in answers]
        # Sorting by content keeps requests that share a context (or a few-shot prefix) in the same chunk. Texts
        # scored whole share nothing, so they keep the caller's order (which may group them by length: less padding).
        order = {key: position for position, key in enumerate(unique)}
        todo.sort(key=lambda k: (KIND_ORDER.index(unique[k].kind), order[k] if unique[k].kind == "token_logprobs"
                                 else json.dumps(to_dict(unique[k]), sort_keys=True)))
        with tqdm(total=len(todo), desc=label or f"{role} requests", unit="req", dynamic_ncols=True,
                  disable=not self.progress or not todo) as bar:
            for kind in KIND_ORDER:
                kind_keys = [k for k in todo if unique[k].kind == kind]
                kind_requests = [unique[k] for k in kind_keys]
                chunk, largest = CHUNK_LIMITS[kind]
                start = 0
                while start < len(kind_keys):
                    batch = kind_keys[start:_chunk_end(kind_requests, start, chunk)]
                    began = time.perf_counter()
                    self.sent[role] += len(batch)
                    self._save_manifest()  # the calls are counted before they are made
                    for key, answer in zip(batch, self._send(model, fingerprint, kind, [unique[k] for k in batch],
                                                             batch)):
                        answers[key] = answer
                        if on_answer is not None:
                            on_answer(key, answer)
                    if after_chunk is not None:
                        after_chunk()
                    start += len(batch)
                    bar.update(len(batch))
                    per_request = (time.perf_counter() - began) / len(batch)
                    chunk = int(min(largest, max(8, TARGET_CHUNK_SECONDS / max(per_request, 1e-6))))
        return [answers[key] for key in keys]

    def _send(self, model: Model, fingerprint: str, kind: str, requests: list[Request],
              keys: list[str]) -> list[Response]:
        streaming = isinstance(model, StreamingModel)
        if streaming:
            model.set_response_hook(lambda index, response: self.cache.put_many(
                fingerprint, [(keys[index], to_dict(response))]))
        try:
            if kind == "loglikelihood":
                answers: list[Response] = list(model.loglikelihood(requests))  # type: ignore[arg-type]
            elif kind == "generate":
                answers = list(model.generate(requests))  # type: ignore[arg-type]
            else:
                answers = list(require_white_box(model, "per-token log-probabilities").token_logprobs(
                    requests))  # type: ignore[arg-type]
        finally:
            if streaming:
                model.set_response_hook(None)
        self.cache.put_many(fingerprint, ((k, to_dict(a)) for k, a in zip(keys, answers)))
        return answers

    # -- records and results --------------------------------------------------------------------------
    def records(self) -> list[Any]:
        return self.run.records()

    def append(self, records: list[Any]) -> None:
        self.run.append(records)

    def note(self, **fields: Any) -> None:
        """Add fields (counts, timings a capability keeps) to this invocation's manifest entry."""
        self._invocation.update(jsonable(fields))
        self._save_manifest()

    def finish(self, results: dict[str, Any]) -> dict[str, Any]:
        """Write results.json (strict JSON) and close this invocation's manifest entry."""
        results = jsonable(results)
        self.run.write_json(RESULTS, results)
        self._invocation["finished"] = True
        self._save_manifest()
        return results

    def _save_manifest(self) -> None:
        self._invocation["seconds"] = round(time.perf_counter() - self._started, 3)
        self._invocation["requests_sent"] = dict(self.sent)
        self._invocation["cache_hits"] = dict(self.hits)
        usage = {role: r.model.usage() for role, r in self.roles.items() if isinstance(r.model, MeteredModel)}
        if usage:
            self._invocation["usage"] = jsonable(usage)
        self.run.write_json(MANIFEST, self.manifest)

    def close(self) -> None:
        try:
            self._save_manifest()
        finally:
            self.cache.close()
            self.run.unlock()
