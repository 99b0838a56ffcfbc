"""The request bodies of the OpenAI-compatible routes, checked field by field.

Every problem becomes a `BadRequest` naming the field (an HTTP 400 in OpenAI's error format). Fields a client may
send that change nothing here (`user`, `logprobs: null`, ...) are accepted; fields whose effect this server does
not implement are refused when set to anything but their neutral value, never silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from lmaudit.serve.engine import TOP_K, Sampling

MAX_N = 64
MAX_STOPS = 4


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400):
        super().__init__(message)
        self.param, self.status = param, status


@dataclass(frozen=True)
class Options:
    """Settings shared by both routes; `max_tokens` None means: up to the end of the context."""

    max_tokens: int | None
    temperature: float
    top_p: float
    seed: int | None
    stop: tuple[str, ...]
    n: int
    stream: bool
    include_usage: bool

    def sampling(self, prompt_tokens: int, context: int) -> Sampling:
        """The generation settings for one prompt, refusing one that leaves no room in the context."""
        room = context - prompt_tokens
        max_tokens = room if self.max_tokens is None else self.max_tokens
        if max_tokens > room or (self.max_tokens is None and room < 1):
            asked = prompt_tokens + (self.max_tokens or 0)
            raise BadRequest(f"this model's maximum context length is {context} tokens; the request asks for "
                             f"{asked} ({prompt_tokens} in the prompt, {self.max_tokens or 0} to generate)",
                             "max_tokens" if prompt_tokens <= context else "prompt")
        return Sampling(max_tokens, self.temperature, self.top_p, self.seed, self.stop)


@dataclass(frozen=True)
class CompletionBody:
    prompts: list[str | list[int]]  # texts to tokenize, or token ids as sent
    options: Options
    echo: bool
    logprobs: int | None  # alternatives per position; None: no logprobs at all


@dataclass(frozen=True)
class ChatBody:
    messages: list[dict[str, str]]
    options: Options
    logprobs: bool
    top_logprobs: int


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def field(body: dict[str, Any], name: str, kind: type, default: Any, check: Any = None, problem: str = "") -> Any:
    """body[name] (JSON null counts as absent) as `kind`, or a BadRequest naming the field."""
    value = body.get(name)
    if value is None:
        return default
    if kind is float and _is_int(value):
        value = float(value)
    if (kind is int and not _is_int(value)) or (kind is not int and not isinstance(value, kind)) or (
            kind is float and isinstance(value, bool)):
        raise BadRequest(f"'{name}' must be {'a number' if kind is float else kind.__name__}, got {value!r}", name)
    if check is not None and not check(value):
        raise BadRequest(f"'{name}' must be {problem}, got {value!r}", name)
    return value


def _stops(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops) or len(stops) > MAX_STOPS:
        raise BadRequest(f"'stop' must be a non-empty string or a list of at most {MAX_STOPS} of them", "stop")
    return tuple(stops)


def _refuse_unsupported(body: dict[str, Any], neutral: dict[str, Any]) -> None:
    for name, value in neutral.items():
        sent = body.get(name)
        if sent is not None and sent != value:
            raise BadRequest(f"'{name}' is not supported by lmaudit serve (leave it out or send {value!r})", name)


def options(body: dict[str, Any], *, min_tokens: int) -> Options:
    max_tokens = field(body, "max_completion_tokens", int, None, lambda v: v >= min_tokens, f">= {min_tokens}")
    if max_tokens is None:
        max_tokens = field(body, "max_tokens", int, None, lambda v: v >= min_tokens, f">= {min_tokens}")
    stream = field(body, "stream", bool, False)
    stream_options = field(body, "stream_options", dict, {})
    if stream_options and not stream:
        raise BadRequest("'stream_options' is only allowed with 'stream': true", "stream_options")
    _refuse_unsupported(body, {"presence_penalty": 0, "frequency_penalty": 0, "logit_bias": {}})
    return Options(
        max_tokens=max_tokens,
        temperature=field(body, "temperature", float, 1.0, lambda v: 0 <= v <= 2, "between 0 and 2"),
        top_p=field(body, "top_p", float, 1.0, lambda v: 0 < v <= 1, "in (0, 1]"),
        seed=field(body, "seed", int, None),
        stop=_stops(body),
        n=field(body, "n", int, 1, lambda v: 1 <= v <= MAX_N, f"between 1 and {MAX_N}"),
        stream=stream,
        include_usage=field(stream_options, "include_usage", bool, False),
    )


def _token_list(value: Any, vocab_size: int) -> list[int] | None:
    """`value` as token ids, None when it is not a list of integers; ids outside the vocabulary are refused."""
    if not isinstance(value, list) or not value or not all(_is_int(v) for v in value):
        return None
    bad = next((v for v in value if not 0 <= v < vocab_size), None)
    if bad is not None:
        raise BadRequest(f"'prompt' holds token id {bad}, outside this model's vocabulary (0-{vocab_size - 1})",
                         "prompt")
    return list(value)


def prompts(value: Any, vocab_size: int) -> list[str | list[int]]:
    """Every prompt form of the completions API: a string, strings, token ids, lists of token ids."""
    problem = "'prompt' must be a non-empty string, a list of them, a list of token ids, or a list of such lists"
    if isinstance(value, str):
        if not value:
            raise BadRequest("'prompt' is empty", "prompt")
        return [value]
    if not isinstance(value, list) or not value:
        raise BadRequest(problem, "prompt")
    ids = _token_list(value, vocab_size)
    if ids is not None:
        return [ids]
    out: list[str | list[int]] = []
    for item in value:
        if isinstance(item, str) and item:
            out.append(item)
        elif (ids := _token_list(item, vocab_size)) is not None:
            out.append(ids)
        else:
            raise BadRequest(problem, "prompt")
    return out


def completion_body(body: dict[str, Any], vocab_size: int) -> CompletionBody:
    _refuse_unsupported(body, {"suffix": ""})
    opts = options(body, min_tokens=0)
    best_of = field(body, "best_of", int, opts.n)
    if best_of != opts.n:
        raise BadRequest("'best_of' other than n is not supported by lmaudit serve", "best_of")
    return CompletionBody(
        prompts=prompts(body.get("prompt"), vocab_size),
        options=replace(opts, max_tokens=16 if opts.max_tokens is None else opts.max_tokens),  # OpenAI's default
        echo=field(body, "echo", bool, False),
        logprobs=field(body, "logprobs", int, None, lambda v: 0 <= v <= TOP_K, f"between 0 and {TOP_K}"),
    )


def _content(message: dict[str, Any], index: int) -> str:
    """A message's text: a string, or a list of text parts (as the SDK sends them)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise BadRequest(f"messages[{index}].content must be text or a list of text parts (this server reads text only)",
                     "messages")


def chat_body(body: dict[str, Any]) -> ChatBody:
    _refuse_unsupported(body, {"tools": [], "functions": [], "response_format": {"type": "text"}})
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list of {role, content} objects", "messages")
    plain = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest(f"messages[{index}] must be an object with a 'role' and a 'content'", "messages")
        role = "system" if message["role"] == "developer" else message["role"]  # OpenAI's new name for system
        plain.append({"role": role, "content": _content(message, index)})
    want = field(body, "logprobs", bool, False)
    top = field(body, "top_logprobs", int, 0, lambda v: 0 <= v <= TOP_K, f"between 0 and {TOP_K}")
    if top and not want:
        raise BadRequest("'top_logprobs' needs 'logprobs': true", "top_logprobs")
    return ChatBody(plain, options(body, min_tokens=1), want, top)
