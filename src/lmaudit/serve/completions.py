"""/v1/completions: prompts (text or token ids), echo, logprobs, n, stop, seed; streamed or whole.

A job produces choice updates, `{"index", "text", "logprobs", "finish_reason"}`: streamed, each is one chunk;
otherwise `merge` joins them into the choices of one response. Both paths run the same code.

Semantics clients rely on (OpenAI's legacy API, and vLLM where OpenAI says nothing):
- `logprobs: k` lists, per token, its text (`tokens`), log-probability (`token_logprobs`), the k most likely
  alternatives plus the chosen token (`top_logprobs`, up to k + 1 entries) and `text_offset`, the character
  where the token starts in the choice's `text`. With `echo` the prompt comes first; its first token has no
  log-probability (null, as OpenAI gives).
- A generated end-of-sequence token is listed (with its log-probability, and counted in usage) but adds nothing
  to `text`. So `max_tokens: 1` always lists exactly one generated token after the prompt, which is what
  lm-eval's `local-completions` slices off (`token_logprobs[ctxlen:-1]`).
- A stop string cuts `text` before it; the tokens up to the one that completed it stay listed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmaudit.serve.engine import Engine, Sampling, Step
from lmaudit.serve.protocol import CompletionBody

Update = dict[str, Any]
Emit = Callable[[Update], None]


def top_entries(engine: Engine, chosen: int, chosen_name: str, chosen_logprob: float, ids: list[int],
                values: list[float], k: int) -> dict[str, float]:
    """The k best alternatives and the chosen token, by name, most likely first (same names merge)."""
    by_id = dict(zip(ids[:k], values[:k]))
    by_id[chosen] = chosen_logprob
    out: dict[str, float] = {}
    for token_id, value in by_id.items():
        name = chosen_name if token_id == chosen else engine.names(token_id)
        out[name] = max(value, out.get(name, -math.inf))
    return dict(sorted(out.items(), key=lambda item: -item[1]))


@dataclass
class _Prompt:
    ids: list[int]
    sampling: Sampling


class CompletionJob:
    """Tokenises and checks every prompt up front (a bad one fails the request before anything streams)."""

    def __init__(self, engine: Engine, body: CompletionBody):
        self.engine, self.body = engine, body
        self.prompts = []
        for prompt in body.prompts:
            ids = engine.encode_prompt(prompt) if isinstance(prompt, str) else prompt
            self.prompts.append(_Prompt(ids, body.options.sampling(len(ids), engine.max_length)))
        self.completion_tokens = 0

    @property
    def usage(self) -> dict[str, int]:
        prompt_tokens = sum(len(p.ids) for p in self.prompts)
        return {"prompt_tokens": prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": prompt_tokens + self.completion_tokens}

    def run(self, emit: Emit, check: Callable[[], None]) -> None:
        n = self.body.options.n
        for p, prompt in enumerate(self.prompts):
            echo = self._echo(prompt.ids) if self.body.echo else None
            shift = len(echo[0]) if echo is not None else 0
            for j, steps in enumerate(self.engine.choices(prompt.ids, prompt.sampling, n, check)):
                index = p * n + j
                if echo is not None:
                    emit({"index": index, "text": echo[0], "logprobs": echo[1], "finish_reason": None})
                count = 0
                for step in steps:
                    count += 1
                    emit({"index": index, "text": step.text, "logprobs": self._step_logprobs(step, shift),
                          "finish_reason": step.finish_reason})
                self.completion_tokens += count
                if not count:  # max_tokens 0: the echo alone
                    emit({"index": index, "text": "", "logprobs": self._empty(), "finish_reason": "length"})

    def _empty(self) -> dict[str, list] | None:
        return None if self.body.logprobs is None else {
            "tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}

    def _echo(self, ids: list[int]) -> tuple[str, dict[str, list] | None]:
        pieces = self.engine.spell(ids)
        text, k = "".join(pieces), self.body.logprobs
        if k is None:
            return text, None
        scored = self.engine.score(ids)
        top_ids, top_values = scored.top_ids[:, :k].tolist(), scored.top_logprobs[:, :k].tolist()
        tops: list[dict[str, float] | None] = [None] + [
            top_entries(self.engine, ids[i], pieces[i], scored.logprobs[i], top_ids[i], top_values[i], k)
            for i in range(1, len(ids))]
        offsets, position = [], 0
        for piece in pieces:
            offsets.append(position)
            position += len(piece)
        return text, {"tokens": pieces, "token_logprobs": list(scored.logprobs), "top_logprobs": tops,
                      "text_offset": offsets}

    def _step_logprobs(self, step: Step, shift: int) -> dict[str, list] | None:
        k = self.body.logprobs
        if k is None:
            return None
        top = top_entries(self.engine, step.token_id, step.piece, step.logprob, step.top_ids, step.top_logprobs, k)
        return {"tokens": [step.piece], "token_logprobs": [step.logprob], "top_logprobs": [top],
                "text_offset": [shift + step.offset]}


def merge(updates: list[Update]) -> list[dict[str, Any]]:
    """The choices of a whole response from the updates a job emitted."""
    choices: dict[int, dict[str, Any]] = {}
    for update in updates:
        choice = choices.setdefault(update["index"], {"index": update["index"], "text": "", "logprobs": None,
                                                      "finish_reason": None})
        choice["text"] += update["text"]
        if update["logprobs"] is not None:
            if choice["logprobs"] is None:
                choice["logprobs"] = {key: [] for key in update["logprobs"]}
            for key, values in update["logprobs"].items():
                choice["logprobs"][key].extend(values)
        choice["finish_reason"] = update["finish_reason"] or choice["finish_reason"]
    return [choices[i] for i in sorted(choices)]
