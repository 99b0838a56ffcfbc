"""Prompt scoring and token-by-token generation over an hf-backend model, for the HTTP server.

Scores are exact per-token log-probabilities of the model's own tokenisation (the hf backend's `encode`), so a
client summing the continuation's tokens gets what the hf backend's loglikelihood gives. A small LRU of recent
inputs keeps their KV caches: prompts that share a prefix with a recent one (the choices of one question, the
shots of a few-shot prompt) run only their new tokens.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

from lmaudit.models.hf import HFModel

TOP_K = 20  # the most alternatives the OpenAI API hands out per position
CHUNK = 512  # tokens per forward: bounds the logits held at once


@dataclass
class Scored:
    """Per-position scores of a token sequence: logprob of token i given tokens < i (None for i = 0)."""

    ids: tuple[int, ...]
    logprobs: list[float | None]
    top_ids: torch.Tensor  # (n, TOP_K); row i: the best alternatives at position i (row 0 unused)
    top_logprobs: torch.Tensor
    next_row: torch.Tensor | None  # log-softmax over the vocabulary after the last token
    prev_row: torch.Tensor | None  # the one before: what predicted the last token
    cache: object  # the KV cache of all n tokens


@dataclass
class Completion:
    ids: list[int]
    logprobs: list[float]
    top_ids: list[list[int]]
    top_logprobs: list[list[float]]
    text: str
    finish_reason: str


def _common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class Engine:
    """Not thread-safe: the server runs every call on one worker thread."""

    def __init__(self, hf: HFModel, cache_entries: int = 8):
        self.hf = hf
        self.model = hf.model
        self.tokenizer = hf.tokenizer
        self._entries: OrderedDict[tuple[int, ...], Scored] = OrderedDict()
        self._capacity = cache_entries

    # -- tokens -----------------------------------------------------------------------------------------
    def encode_prompt(self, prompt: str) -> list[int]:
        return self.hf.encode(prompt)

    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        if not self.tokenizer.chat_template:
            raise ValueError(f"{self.hf.name} has no chat template; use /v1/completions with a plain prompt")
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.hf.encode(text, add_special_tokens=False)

    def pieces(self, ids: list[int]) -> tuple[list[str], list[int]]:
        """The text each token adds and where it starts: decoded prefixes, so the pieces spell the text."""
        texts, offsets, previous = [], [], ""
        for i in range(len(ids)):
            current = self.tokenizer.decode(ids[:i + 1], skip_special_tokens=True,
                                            clean_up_tokenization_spaces=False)
            start = len(previous) if current.startswith(previous) else len(_shared(previous, current))
            texts.append(current[start:])
            offsets.append(start)
            previous = current
        return texts, offsets

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)

    # -- scoring ----------------------------------------------------------------------------------------
    @torch.inference_mode()
    def score(self, ids: list[int], need_next: bool = True) -> Scored:
        """Scores of every token; `need_next=False` (echo only) lets a sibling prompt skip the model entirely."""
        key = tuple(ids)
        if not key:
            raise ValueError("empty prompt")
        base, shared = self._best_prefix(key)
        if base is not None and shared == len(base.ids) == len(key):
            return base
        if (not need_next and base is not None and base.prev_row is not None
                and shared == len(key) - 1 == len(base.ids) - 1):
            # Same input as a cached prompt but for the last token (the choices of one question): the row
            # that predicts it is already known.
            row = base.prev_row
            values, indices = row.topk(TOP_K)
            return Scored(key, base.logprobs[:-1] + [float(row[key[-1]])],
                          torch.cat([base.top_ids[:-1], indices.unsqueeze(0)]),
                          torch.cat([base.top_logprobs[:-1], values.unsqueeze(0)]), None, None, None)
        # known: leading positions whose scores come from the cached entry; feed_from: first token to run.
        # A cached entry that is a prefix of the key also gives the row predicting its next token; one that
        # diverges inside does not, so its last shared token runs again.
        if base is None:
            known, feed_from, first_row, cache = 1, 0, None, None
        elif shared == len(base.ids):
            known, feed_from, first_row = shared, shared, base.next_row
            cache = _cropped(base.cache, shared, self.model.config)
        else:
            known, feed_from, first_row = shared, shared - 1, None
            cache = _cropped(base.cache, shared - 1, self.model.config)
        rows: list[torch.Tensor] = [] if first_row is None else [first_row.unsqueeze(0)]
        for begin in range(feed_from, len(key), CHUNK):
            out = self.model(input_ids=torch.tensor([key[begin:begin + CHUNK]]), past_key_values=cache,
                             use_cache=True)
            cache = out.past_key_values
            rows.append(torch.log_softmax(out.logits[0].float(), dim=-1))
        predictions = torch.cat(rows)  # row j predicts token known + j; the last row predicts the next token
        body = predictions[: len(key) - known]
        targets = torch.tensor(key[known:], dtype=torch.long)
        values, indices = body.topk(TOP_K, dim=-1)
        if base is None:
            head_lps: list[float | None] = [None]
            head_ids, head_values = torch.zeros(1, TOP_K, dtype=torch.long), torch.full((1, TOP_K), float("nan"))
        else:
            head_lps, head_ids, head_values = base.logprobs[:known], base.top_ids[:known], base.top_logprobs[:known]
        scored = Scored(
            ids=key,
            logprobs=head_lps + body.gather(1, targets.unsqueeze(1)).squeeze(1).tolist(),
            top_ids=torch.cat([head_ids, indices]), top_logprobs=torch.cat([head_values, values]),
            next_row=predictions[-1], prev_row=predictions[-2] if len(predictions) > 1 else None, cache=cache)
        self._remember(scored)
        return scored

    def _best_prefix(self, key: tuple[int, ...]) -> tuple[Scored | None, int]:
        best, best_len = None, 0
        for entry in self._entries.values():
            shared = _common_prefix(entry.ids, key)
            if shared > best_len:
                best, best_len = entry, shared
        if best is None or best_len < 2:
            return None, 0
        self._entries.move_to_end(best.ids)
        return best, best_len

    def _remember(self, scored: Scored) -> None:
        self._entries[scored.ids] = scored
        self._entries.move_to_end(scored.ids)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    # -- generation -------------------------------------------------------------------------------------
    @torch.inference_mode()
    def complete(self, ids: list[int], *, max_tokens: int, temperature: float, seed: int | None,
                 stop: list[str]) -> Completion:
        """Greedy at temperature 0, else seeded sampling; stops at EOS, a stop string or max_tokens."""
        if max_tokens == 0:
            return Completion([], [], [], [], "", "length")
        scored = self.score(ids)
        assert scored.next_row is not None
        row, cache = scored.next_row, _cropped(scored.cache, len(ids), self.model.config)
        generator = torch.Generator().manual_seed(seed if seed is not None else 0)
        eos = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id} - {None}
        out = Completion([], [], [], [], "", "length")
        for step in range(max_tokens):
            if temperature > 0:
                token = int(torch.multinomial(torch.softmax(row / temperature, dim=-1), 1, generator=generator))
            else:
                token = int(row.argmax())
            values, indices = row.topk(TOP_K)
            if token in eos:
                out.finish_reason = "stop"
                break
            out.ids.append(token)
            out.logprobs.append(float(row[token]))
            out.top_ids.append(indices.tolist())
            out.top_logprobs.append(values.tolist())
            out.text = self.tokenizer.decode(out.ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            cut = min((out.text.find(s) for s in stop if s in out.text), default=-1)
            if cut >= 0:
                out.text, out.finish_reason = out.text[:cut], "stop"
                break
            if step + 1 < max_tokens:
                result = self.model(input_ids=torch.tensor([[token]]), past_key_values=cache, use_cache=True)
                cache = result.past_key_values
                row = torch.log_softmax(result.logits[0, -1].float(), dim=-1)
        return out


def _shared(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _cropped(cache: object, length: int, config: object) -> object:
    """A fresh cache holding the first `length` positions as views; the next forward appends to its copy."""
    from transformers import DynamicCache

    fresh = DynamicCache(config=config)
    for index, layer in enumerate(cache.layers):  # type: ignore[attr-defined]
        fresh.update(layer.keys[:, :, :length], layer.values[:, :, :length], index)
    return fresh
