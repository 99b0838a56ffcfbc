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


@dataclass(frozen=True)
class TokenLogprobsRequest:
    """log P(token | the tokens before it) for every token of `text`, tokenised as a continuation of nothing.

    White-box models only: Min-K% membership scores and per-token analyses go through the runner (and its
    response cache) with this kind.
    """

    text: str
    kind: Literal["token_logprobs"] = "token_logprobs"


Request = LoglikelihoodRequest | GenerateRequest | TokenLogprobsRequest


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


@dataclass(frozen=True)
class TokenLogprobs:
    """The scored tokens of a TokenLogprobsRequest (as many as fit the context window) and their log-probabilities."""

    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    kind: Literal["token_logprobs"] = "token_logprobs"


Response = LoglikelihoodResult | Generation | TokenLogprobs


@dataclass
class Sample:
    """One dataset item. `data` holds what the task's prompt needs; `metadata` holds grouping keys.

    `source_id` names the sample this one was derived from (a variant of an MCQ item), if any.
    """

    id: str
    data: dict[str, Any]
    target: Any
    metadata: dict[str, Any] = field(default_factory=dict)
    source_id: str | None = None


RECORD_SCHEMA = "lmaudit.sample/2"
# Payload fields that version 1 kept inside `metadata`, next to the group keys.
_V1_PAYLOADS = {"request_roles": "roles", "judges": "judges", "execution": "execution", "source_id": "source_id"}


@dataclass
class SampleRecord:
    """One line of samples.jsonl: the sample, what was asked, what came back, and the scores.

    `metadata` holds only group-by keys and descriptive fields (subject, category, attack); what a capability
    attaches to a sample lives in typed payload fields: `roles` (the role of each request: attacker, target,
    judge:<name>), `judges` (verdicts by judge name), `execution` (a code sandbox's outcome) and `source_id`
    (the sample a variant was derived from).
    """

    task: str
    sample_id: str
    target: Any
    metadata: dict[str, Any]
    requests: list[dict[str, Any]]
    responses: list[dict[str, Any]]
    scores: dict[str, float]
    roles: list[str] | None = None
    judges: dict[str, Any] | None = None
    execution: dict[str, Any] | None = None
    source_id: str | None = None
    schema: str = RECORD_SCHEMA

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "SampleRecord":
        """Reads version 2 records, and version 1 (no `schema`) by moving payloads out of `metadata`."""
        fields = {k: raw[k] for k in ("task", "sample_id", "target", "metadata", "requests", "responses", "scores")}
        if "schema" not in raw:
            metadata = dict(fields["metadata"])
            for old, new in _V1_PAYLOADS.items():
                if old in metadata:
                    fields[new] = metadata.pop(old)
            fields["metadata"] = metadata
            return cls(**fields)
        if raw["schema"] != RECORD_SCHEMA:
            raise ValueError(f"sample record schema {raw['schema']!r}; this lmaudit reads {RECORD_SCHEMA}")
        for name in ("roles", "judges", "execution", "source_id"):
            fields[name] = raw.get(name)
        return cls(**fields)


def to_dict(obj: Request | Response) -> dict[str, Any]:
    raw = asdict(obj)
    if isinstance(obj, GenerateRequest) and obj.messages is not None:
        raw["messages"] = [asdict(m) for m in obj.messages]
    return raw


def request_from_dict(raw: dict[str, Any]) -> Request:
    if raw["kind"] == "loglikelihood":
        return LoglikelihoodRequest(raw["context"], raw["continuation"])
    if raw["kind"] == "token_logprobs":
        return TokenLogprobsRequest(raw["text"])
    fields = dict(raw)
    if fields.get("messages") is not None:
        fields["messages"] = tuple(Message(**m) for m in fields["messages"])
    fields["stop"] = tuple(fields.get("stop", ()))
    return GenerateRequest(**fields)


def response_from_dict(raw: dict[str, Any]) -> Response:
    if raw["kind"] == "loglikelihood":
        return LoglikelihoodResult(**raw)
    if raw["kind"] == "token_logprobs":
        return TokenLogprobs(tuple(raw["token_ids"]), tuple(raw["logprobs"]))
    fields = dict(raw)
    if fields.get("token_logprobs") is not None:
        fields["token_logprobs"] = tuple(fields["token_logprobs"])
    return Generation(**fields)


def request_key(request: Request) -> str:
    """Stable content hash of a request: the response cache and cross-task dedup key."""
    canonical = json.dumps(to_dict(request), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
