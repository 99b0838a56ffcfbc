"""The core record: a Sample becomes Requests, a Model answers with Responses, a Task scores them.

Every capability reads and writes these types; they serialise to plain JSON so a run's
`samples.jsonl` is the single log all analyses share.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score `continuation` given `context` (log P(continuation | context))."""

    context: str
    continuation: str
    kind: Literal["loglikelihood"] = "loglikelihood"


@dataclass(frozen=True)
class GenerateRequest:
    """Generate text from a plain `prompt` or from chat `messages` (the backend applies the chat template)."""

    prompt: str | None = None
    messages: tuple[Message, ...] | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    kind: Literal["generate"] = "generate"

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("GenerateRequest needs exactly one of prompt or messages")


Request = LoglikelihoodRequest | GenerateRequest


@dataclass(frozen=True)
class LoglikelihoodResult:
    logprob: float
    is_greedy: bool
    n_tokens: int
    kind: Literal["loglikelihood"] = "loglikelihood"


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str
    token_logprobs: tuple[float, ...] | None = None
    kind: Literal["generate"] = "generate"


Response = LoglikelihoodResult | Generation


@dataclass
class Sample:
    """One dataset item. `data` holds what the task's prompt needs; `metadata` holds grouping keys."""

    id: str
    data: dict[str, Any]
    target: Any
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class SampleRecord:
    """One line of samples.jsonl: the sample, what was asked, what came back, and the scores."""

    task: str
    sample_id: str
    target: Any
    metadata: dict[str, Any]
    requests: list[dict[str, Any]]
    responses: list[dict[str, Any]]
    scores: dict[str, float]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "SampleRecord":
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__})


def to_dict(obj: Request | Response) -> dict[str, Any]:
    raw = asdict(obj)
    if isinstance(obj, GenerateRequest) and obj.messages is not None:
        raw["messages"] = [asdict(m) for m in obj.messages]
    return raw


def request_from_dict(raw: dict[str, Any]) -> Request:
    if raw["kind"] == "loglikelihood":
        return LoglikelihoodRequest(raw["context"], raw["continuation"])
    fields = dict(raw)
    if fields.get("messages") is not None:
        fields["messages"] = tuple(Message(**m) for m in fields["messages"])
    fields["stop"] = tuple(fields.get("stop", ()))
    return GenerateRequest(**fields)


def response_from_dict(raw: dict[str, Any]) -> Response:
    if raw["kind"] == "loglikelihood":
        return LoglikelihoodResult(**raw)
    fields = dict(raw)
    if fields.get("token_logprobs") is not None:
        fields["token_logprobs"] = tuple(fields["token_logprobs"])
    return Generation(**fields)


def request_key(request: Request) -> str:
    """Stable content hash of a request: the response cache and cross-task dedup key."""
    canonical = json.dumps(to_dict(request), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
