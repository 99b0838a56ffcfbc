"""/v1/chat/completions: messages through the model's chat template; n, stop, seed, logprobs; streamed or whole.

Choice updates are `{"index", "delta", "logprobs", "finish_reason"}`, exactly the choices of a streamed chunk;
`merge` joins them into the choices of one response. As in OpenAI's chat API, `logprobs.content` covers the
message's tokens (an end-of-sequence token is not part of the message) and `top_logprobs` lists exactly the k
most likely tokens at each position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lmaudit.serve.completions import Emit, Update
from lmaudit.serve.engine import Engine, Step
from lmaudit.serve.protocol import ChatBody


class ChatJob:
    """Applies the chat template and checks the context up front (before anything streams)."""

    def __init__(self, engine: Engine, body: ChatBody):
        self.engine, self.body = engine, body
        self.ids = engine.encode_chat(body.messages)
        self.sampling = body.options.sampling(len(self.ids), engine.max_length)
        self.completion_tokens = 0

    @property
    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": len(self.ids), "completion_tokens": self.completion_tokens,
                "total_tokens": len(self.ids) + self.completion_tokens}

    def run(self, emit: Emit, check: Callable[[], None]) -> None:
        for index, steps in enumerate(self.engine.choices(self.ids, self.sampling, self.body.options.n, check)):
            emit({"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                  "finish_reason": None})
            for step in steps:
                self.completion_tokens += 1
                logprobs = None
                if self.body.logprobs:
                    logprobs = {"content": [] if step.special else [self._entry(step)], "refusal": None}
                emit({"index": index, "delta": {"content": step.text} if step.text else {}, "logprobs": logprobs,
                      "finish_reason": step.finish_reason})

    def _entry(self, step: Step) -> dict[str, Any]:
        k = self.body.top_logprobs
        alternatives = [{"token": name, "logprob": value, "bytes": list(name.encode())}
                        for name, value in ((self.engine.names(i), v)
                                            for i, v in zip(step.top_ids[:k], step.top_logprobs[:k]))]
        return {"token": step.piece, "logprob": step.logprob, "bytes": list(step.piece.encode()),
                "top_logprobs": alternatives}


def merge(updates: list[Update]) -> list[dict[str, Any]]:
    """The choices of a whole response (`message` instead of `delta`) from the updates a job emitted."""
    choices: dict[int, dict[str, Any]] = {}
    for update in updates:
        choice = choices.setdefault(update["index"], {
            "index": update["index"], "message": {"role": "assistant", "content": ""}, "logprobs": None,
            "finish_reason": None})
        choice["message"]["content"] += update["delta"].get("content", "")
        if update["logprobs"] is not None:
            if choice["logprobs"] is None:
                choice["logprobs"] = {"content": [], "refusal": None}
            choice["logprobs"]["content"].extend(update["logprobs"]["content"])
        choice["finish_reason"] = update["finish_reason"] or choice["finish_reason"]
    return [choices[i] for i in sorted(choices)]
