"""Prompt scoring and token-by-token generation over a white-box model, for the HTTP server.

Everything comes through the `WhiteBoxModel` contract: its tokenizer, its torch module (a transformers causal
LM, called with a KV cache), its device and context length. Scores are exact per-token log-probabilities of the
token ids given, so a client summing a continuation's tokens gets what the hf backend's loglikelihood gives on
the same ids. A small LRU of recent sequences keeps their KV caches: a prompt that shares a prefix with a recent
one (the choices of one question, the shots of a few-shot prompt) runs only its new tokens.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from lmaudit.core.errors import ModelError
from lmaudit.models.base import WhiteBoxModel
from lmaudit.serve.text import Detokenizer, StopScanner, TokenNames, spell

TOP_K = 20  # the most alternatives handed out per position (vLLM's default limit; OpenAI's is lower)
CHUNK = 512  # tokens per forward pass while scoring: bounds the logits held at once
MIN_SHARED = 2  # a cached sequence is reused from this many shared leading tokens


@dataclass
class Scored:
    """Per-position scores of a token sequence: position i holds the log-probability of token i given < i."""

    ids: tuple[int, ...]
    logprobs: list[float | None]  # None at position 0: nothing predicts the first token
    top_ids: torch.Tensor  # (n, TOP_K) on the CPU; row i: the best alternatives at position i (row 0 unused)
    top_logprobs: torch.Tensor
    next_row: torch.Tensor  # log-softmax over the vocabulary after the last token (on the model's device)
    cache: Any  # the KV cache of all n tokens


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass
class Step:
    """One generated token and what a client is shown for it."""

    token_id: int
    logprob: float  # under the model's own distribution (before temperature and top_p), as vLLM reports
    top_ids: list[int]
    top_logprobs: list[float]
    piece: str  # the token's text in `logprobs.tokens` (special tokens literally)
    offset: int  # where the piece starts in the completion's text
    special: bool  # a special token (EOS): listed with its logprob, never part of the text
    text: str  # completion text released with this token (stop strings held back, then cut)
    finish_reason: str | None = None  # set on the last step: "stop" (EOS or a stop string) or "length"


class Cancelled(Exception):
    """The client went away; generation stops."""


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class Engine:
    """Not thread-safe: the server runs every call on one worker thread."""

    def __init__(self, model: WhiteBoxModel, cache_entries: int = 8, chunk: int = CHUNK):
        self.model = model
        self.chunk = chunk
        self.module = model.module
        self.tokenizer = model.tokenizer
        self.device = model.device
        self.max_length = model.max_length
        self.vocab_size = self.module.get_input_embeddings().num_embeddings
        self.names = TokenNames(self.tokenizer)
        self._stop_ids = {self.tokenizer.eos_token_id} - {None}
        self._special_ids = set(self.tokenizer.all_special_ids)
        self._entries: OrderedDict[tuple[int, ...], Scored] = OrderedDict()
        self._capacity = cache_entries
        # Tokens run through the model (what the prefix cache saves shows here) and tokens generated.
        self.stats = {"forward_tokens": 0, "generated_tokens": 0}

    # -- tokens -----------------------------------------------------------------------------------------
    def encode_prompt(self, prompt: str) -> list[int]:
        """The model's own tokenisation of a text prompt (its default special tokens, as vLLM adds them)."""
        return self.model.encode(prompt)

    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelError(f"{self.model.name} has no chat template; use /v1/completions with a plain prompt")
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.model.encode(text, add_special_tokens=False)

    def spell(self, ids: Sequence[int]) -> list[str]:
        return spell(self.tokenizer, ids)

    # -- scoring ----------------------------------------------------------------------------------------
    @torch.inference_mode()
    def score(self, ids: Sequence[int]) -> Scored:
        """Scores of every token and the distribution after the last, reusing the best cached prefix."""
        key = tuple(ids)
        if not key:
            raise ModelError("an empty token sequence has nothing to score")
        base, shared = self._best_prefix(key)
        if base is not None and shared == len(base.ids) == len(key):
            return base
        # known: leading positions whose scores come from the cached entry; feed_from: first token to run;
        # carry: the row predicting token feed_from, when known. An entry that is a prefix of the key gives
        # that row; one that diverges inside (or runs past the key) does not, so its last shared token runs again.
        if base is None:
            known, feed_from, cache, carry = 1, 0, None, None
            logprobs: list[float | None] = [None]
            top_ids, top_values = [torch.zeros(1, TOP_K, dtype=torch.long)], [torch.full((1, TOP_K), float("nan"))]
        else:
            known = shared
            feed_from, carry = (shared, base.next_row) if shared == len(base.ids) else (shared - 1, None)
            cache = self._cropped(base.cache, feed_from)
            logprobs, top_ids, top_values = base.logprobs[:known], [base.top_ids[:known]], [base.top_logprobs[:known]]
        self.stats["forward_tokens"] += len(key) - feed_from
        # One chunk of vocabulary rows at a time: a long prompt never holds all its rows at once.
        for begin in range(feed_from, len(key), self.chunk):
            end = min(begin + self.chunk, len(key))
            out = self.module(input_ids=torch.tensor([key[begin:end]], device=self.device), past_key_values=cache,
                              use_cache=True)
            cache = out.past_key_values
            rows = torch.log_softmax(out.logits[0].float(), dim=-1)  # row r predicts token begin + r + 1
            first = begin + 1
            if carry is not None:
                rows, first = torch.cat([carry.unsqueeze(0), rows]), begin
            # rows[j] predicts token first + j; the last one, the token after this chunk
            wanted = rows[max(known, first) - first: end - first]
            targets = torch.tensor(key[max(known, first):end], dtype=torch.long, device=self.device)
            logprobs += wanted.gather(1, targets.unsqueeze(1)).squeeze(1).tolist()
            values, indices = wanted.topk(TOP_K, dim=-1)
            top_ids.append(indices.cpu())
            top_values.append(values.cpu())
            carry = rows[-1]
        scored = Scored(ids=key, logprobs=logprobs, top_ids=torch.cat(top_ids), top_logprobs=torch.cat(top_values),
                        next_row=carry, cache=cache)
        self._remember(scored)
        return scored

    def _best_prefix(self, key: tuple[int, ...]) -> tuple[Scored | None, int]:
        best = self._entries.get(key)
        best_len = 0 if best is None else len(key)
        for entry in self._entries.values() if best is None else ():
            shared = _common_prefix(entry.ids, key)
            # at equal length prefer an entry that ends there: it also knows the row predicting what follows
            if shared > best_len or (best is not None and shared == best_len == len(entry.ids)):
                best, best_len = entry, shared
        if best is None or best_len < MIN_SHARED:
            return None, 0
        self._entries.move_to_end(best.ids)
        return best, best_len

    def _remember(self, scored: Scored) -> None:
        self._entries[scored.ids] = scored
        self._entries.move_to_end(scored.ids)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def _cropped(self, cache: Any, length: int) -> Any:
        """A fresh cache holding the first `length` positions as views: a forward appends to its own copy."""
        from transformers import DynamicCache

        fresh = DynamicCache(config=self.module.config)
        for index, layer in enumerate(cache.layers):
            fresh.update(layer.keys[:, :, :length], layer.values[:, :, :length], index)
        return fresh

    # -- generation -------------------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, ids: Sequence[int], sampling: Sampling,
                 check: Callable[[], None] | None = None) -> Iterator[Step]:
        """Steps until EOS, a stop string or max_tokens; greedy at temperature 0, else seeded sampling.

        `check()` runs before each token and may raise `Cancelled`. With max_tokens 0 nothing is yielded.
        """
        if sampling.max_tokens <= 0:
            return
        scored = self.score(ids)
        row, cache = scored.next_row, self._cropped(scored.cache, len(ids))
        seed = sampling.seed if sampling.seed is not None else secrets.randbits(63)
        generator = torch.Generator().manual_seed(seed)
        detokenizer, stops, offset = Detokenizer(self.tokenizer, ids), StopScanner(sampling.stop), 0
        for count in range(1, sampling.max_tokens + 1):
            if check is not None:
                check()
            token = self._choose(row, sampling, generator)
            values, indices = row.topk(TOP_K)
            special = token in self._special_ids
            piece = detokenizer.push(token)
            finish = "stop" if token in self._stop_ids else ("length" if count == sampling.max_tokens else None)
            if finish is not None:
                piece += detokenizer.flush()
            self.stats["generated_tokens"] += 1
            shown, stopped = stops.feed("" if special else piece)
            if stopped:
                finish = "stop"
            elif finish is not None:
                shown += stops.flush()
            yield Step(token, float(row[token]), indices.tolist(), values.tolist(), piece, offset, special,
                       shown, finish)
            if finish is not None:
                return
            offset += 0 if special else len(piece)
            self.stats["forward_tokens"] += 1
            out = self.module(input_ids=torch.tensor([[token]], device=self.device), past_key_values=cache,
                              use_cache=True)
            cache = out.past_key_values
            row = torch.log_softmax(out.logits[0, -1].float(), dim=-1)

    def choices(self, ids: Sequence[int], sampling: Sampling, n: int,
                check: Callable[[], None] | None = None) -> Iterator[Iterator[Step]]:
        """The steps of n choices in turn: greedy ones are computed once, seeded ones draw with seed + j."""
        recorded: list[Step] = []
        for j in range(n):
            if sampling.temperature == 0 and j > 0:
                yield iter(recorded)
                continue
            seeded = sampling if sampling.seed is None else replace(sampling, seed=sampling.seed + j)
            steps = self.generate(ids, seeded, check)
            yield _recording(steps, recorded) if sampling.temperature == 0 and n > 1 else steps

    @staticmethod
    def _choose(row: torch.Tensor, sampling: Sampling, generator: torch.Generator) -> int:
        if sampling.temperature == 0:
            return int(row.argmax())
        probs = torch.softmax(row / sampling.temperature, dim=-1).cpu()  # the generator lives on the CPU
        if sampling.top_p < 1:
            ordered, order = probs.sort(descending=True)
            outside = ordered.cumsum(0) - ordered >= sampling.top_p  # the smallest set reaching top_p stays
            probs = probs.scatter(0, order[outside], 0.0)
        return int(torch.multinomial(probs, 1, generator=generator))


def _recording(steps: Iterator[Step], into: list[Step]) -> Iterator[Step]:
    for step in steps:
        into.append(step)
        yield step
