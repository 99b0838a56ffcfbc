"""Model calls through the shared response cache: look up first, store each chunk the moment it is answered."""

from __future__ import annotations

import time
from collections.abc import Sequence

from tqdm import tqdm

from lmaudit.core.types import Generation, GenerateRequest, request_key, response_from_dict, to_dict
from lmaudit.models.base import Model
from lmaudit.runner.cache import ResponseCache

CHUNK_SECONDS = 10.0  # at most this much model work is lost to a kill


class CachedGenerator:
    """A model behind a ResponseCache. `sent` counts requests that reached the model, `hits` cache answers."""

    def __init__(self, model: Model, cache: ResponseCache, *, label: str, progress: bool = False):
        self.model, self.cache, self.label, self.progress = model, cache, label, progress
        self.fingerprint = model.fingerprint()
        self.sent = 0
        self.hits = 0

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        keys = [request_key(r) for r in requests]
        unique = dict(zip(keys, requests))
        answers: dict[str, Generation] = {}
        for key, raw in self.cache.get_many(self.fingerprint, unique).items():
            answer = response_from_dict(raw)
            if isinstance(answer, Generation):
                answers[key] = answer
        self.hits += len(answers)
        todo = [key for key in unique if key not in answers]
        chunk, start = 8, 0
        with tqdm(total=len(todo), desc=self.label, unit="req", disable=not self.progress or not todo,
                  dynamic_ncols=True) as bar:
            while start < len(todo):
                batch = todo[start:start + chunk]
                began = time.perf_counter()
                generated = self.model.generate([unique[k] for k in batch])
                self.sent += len(batch)
                self.cache.put_many(self.fingerprint, ((k, to_dict(g)) for k, g in zip(batch, generated)))
                answers.update(zip(batch, generated))
                start += len(batch)
                bar.update(len(batch))
                per_request = (time.perf_counter() - began) / len(batch)
                chunk = int(min(256, max(8, CHUNK_SECONDS / max(per_request, 1e-6))))
        return [answers[key] for key in keys]
