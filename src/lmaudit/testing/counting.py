"""CountingModel: wrap any model and record every request that reaches it (for 'no call repeated' checks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lmaudit.core.types import Generation, GenerateRequest, LoglikelihoodRequest, LoglikelihoodResult, request_key


class CountingModel:
    def __init__(self, model: Any):
        self.inner = model
        self.name = model.name
        self.sent: list[str] = []  # request keys, in the order they reached the model

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        self.sent += [request_key(r) for r in requests]
        return self.inner.loglikelihood(requests)

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        self.sent += [request_key(r) for r in requests]
        return self.inner.generate(requests)
