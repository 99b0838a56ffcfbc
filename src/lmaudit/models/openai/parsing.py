"""Response bodies (plain JSON) into typed results.

Anything malformed raises (KeyError, TypeError, Malformed) and the scheduler retries the request; a body that
is well formed but lacks what a request kind needs (no logprobs at all) raises ModelError, which no retry fixes.
"""

from __future__ import annotations

from typing import Any

from lmaudit.core.errors import ModelError
from lmaudit.core.types import Generation
from lmaudit.models.openai.options import LETTER_HINT
from lmaudit.models.openai.transport import Malformed

Echoed = tuple[list[str], list[float | None], list[dict[str, float] | None], list[int]]


def choices(raw: dict[str, Any], n: int) -> list[dict[str, Any]]:
    found = sorted(raw["choices"], key=lambda c: c["index"])
    if len(found) != n:
        raise Malformed(f"expected {n} choices, got {len(found)}")
    return found


def _floats(values: Any) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)


def completion_generations(raw: dict[str, Any], n: int) -> list[Generation]:
    gens = []
    for choice in choices(raw, n):
        if not isinstance(choice["text"], str):
            raise Malformed("choice without text")
        logprobs = choice.get("logprobs") or {}
        gens.append(Generation(text=choice["text"], finish_reason=str(choice.get("finish_reason") or "stop"),
                               token_logprobs=_floats(logprobs.get("token_logprobs"))))
    return gens


def chat_generations(raw: dict[str, Any], n: int) -> list[Generation]:
    gens = []
    for choice in choices(raw, n):
        content = choice["message"].get("content")
        if content is not None and not isinstance(content, str):
            raise Malformed("message content is not text")
        tokens = (choice.get("logprobs") or {}).get("content")
        gens.append(Generation(text=content or "", finish_reason=str(choice.get("finish_reason") or "stop"),
                               token_logprobs=_floats(None if tokens is None else [t["logprob"] for t in tokens])))
    return gens


def generated_tokens(raw: dict[str, Any]) -> list[tuple[str, float]]:
    logprobs = choices(raw, 1)[0].get("logprobs")
    if not logprobs or not logprobs.get("tokens"):
        raise ModelError("the server returned no logprobs for generated tokens; it cannot score "
                         f"loglikelihood requests; {LETTER_HINT}")
    return [(t, float(v)) for t, v in zip(logprobs["tokens"], logprobs["token_logprobs"])]


def echoed(raw: dict[str, Any], prompt: str) -> Echoed:
    """Echoed prompt tokens, their logprobs, top-1 alternatives and character offsets (prompt part only)."""
    logprobs = choices(raw, 1)[0].get("logprobs")
    if not logprobs or logprobs.get("tokens") is None or logprobs.get("token_logprobs") is None:
        raise ModelError("the server's /completions returned no echo logprobs; it cannot score loglikelihood "
                         f"requests; {LETTER_HINT}")
    tokens, values = list(logprobs["tokens"]), list(logprobs["token_logprobs"])
    offsets = logprobs.get("text_offset")
    if not offsets:  # derive offsets where the server leaves them out and the tokens spell the text
        offsets, position = [], 0
        for token in tokens:
            offsets.append(position)
            position += len(token)
        if not "".join(tokens).startswith(prompt):
            raise ModelError("the server's echoed tokens do not spell the prompt and it gives no text offsets; "
                             "cannot locate the continuation")
    if len(offsets) != len(tokens) or len(values) != len(tokens):
        raise Malformed("echo logprob lists of different lengths")
    tops = logprobs.get("top_logprobs") or [None] * len(tokens)
    keep = [i for i, start in enumerate(offsets) if start < len(prompt)]  # drop any generated token
    return ([tokens[i] for i in keep], [values[i] for i in keep], [tops[i] for i in keep],
            [offsets[i] for i in keep])


def first_token_top(raw: dict[str, Any]) -> list[tuple[str, float]]:
    content = (choices(raw, 1)[0].get("logprobs") or {}).get("content")
    if not content:
        raise ModelError("the chat endpoint returned no logprobs; loglikelihood=letters needs logprobs and "
                         "top_logprobs on /chat/completions")
    first = content[0]
    return ([(t["token"], float(t["logprob"])) for t in first.get("top_logprobs") or []]
            or [(first["token"], float(first["logprob"]))])
