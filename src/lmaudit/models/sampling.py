"""Batched decoding where every row keeps its own settings and its own random stream.

A sampled request's text must depend on its seed only, not on which batch it fell into or where in it. So each
row draws from its own `torch.Generator`, seeded by the request, and turns one uniform draw per step into a
token by inverse CDF over the softmax (at temperature 1/T); greedy rows take the argmax. Batch-mates change the
logits only by float rounding, so the same draw picks the same token. Rows also keep their own max tokens and
stop strings, and leave the batch (its KV cache rows are dropped) as soon as they finish.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lmaudit.core.types import Generation


@dataclass
class Row:
    prompt: list[int]
    max_tokens: int
    temperature: float
    stop: tuple[str, ...]
    seed: int | None  # None for a greedy row
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish: str | None = None
    generator: torch.Generator | None = None


def _stopped(row: Row, tokenizer: Any) -> str | None:
    """The row's text once a stop string appears in it, else None."""
    text = tokenizer.decode(row.tokens, skip_special_tokens=True)
    cut = min((text.find(s) for s in row.stop if s in text), default=-1)
    return text[:cut] if cut >= 0 else None


def decode_rows(module: Any, tokenizer: Any, rows: Sequence[Row], *, device: torch.device, pad_id: int,
                eos_ids: set[int]) -> list[Generation]:
    """Generate for every row at once (left padding, one KV cache), each row under its own settings."""
    seed_rows(rows)
    width = max(len(r.prompt) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r.prompt)) + r.prompt for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r.prompt)) + [1] * len(r.prompt) for r in rows], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    output = module(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    cache, logits = output.past_key_values, output.logits[:, -1, :]
    live = list(range(len(rows)))  # rows still generating, in cache order
    texts: dict[int, str] = {}
    next_position = positions[:, -1] + 1
    while live:
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        chosen = choose_tokens(logprobs, [rows[i] for i in live])
        keep = []
        for slot, index in enumerate(live):
            row, token = rows[index], int(chosen[slot])
            if token in eos_ids:
                row.finish = "stop"
                continue
            row.tokens.append(token)
            row.logprobs.append(float(logprobs[slot, token]))
            if row.stop:
                cut = _stopped(row, tokenizer)
                if cut is not None:
                    texts[index], row.finish = cut, "stop"
                    continue
            if len(row.tokens) >= row.max_tokens:
                row.finish = "length"
                continue
            keep.append(slot)
        if not keep:
            break
        if len(keep) < len(live):
            selection = torch.tensor(keep, device=device)
            cache.batch_select_indices(selection)
            mask, next_position, chosen = mask[selection], next_position[selection], chosen[selection]
            live = [live[slot] for slot in keep]
        mask = torch.cat([mask, torch.ones((len(live), 1), dtype=mask.dtype, device=device)], dim=1)
        output = module(input_ids=chosen[:, None], attention_mask=mask, position_ids=next_position[:, None],
                        past_key_values=cache, use_cache=True)
        cache, logits = output.past_key_values, output.logits[:, -1, :]
        next_position = next_position + 1
    out = []
    for index, row in enumerate(rows):
        text = texts.get(index)
        if text is None:
            text = tokenizer.decode(row.tokens, skip_special_tokens=True)
        out.append(Generation(text=text, finish_reason=row.finish or "length", token_logprobs=tuple(row.logprobs)))
    return out


def seed_rows(rows: Sequence[Row]) -> None:
    """Give every sampled row its own generator, seeded by its request."""
    for row in rows:
        if row.seed is not None:
            row.generator = torch.Generator(device="cpu").manual_seed(row.seed)


def choose_tokens(logprobs: torch.Tensor, rows: Sequence[Row]) -> torch.Tensor:
    """One token per row: argmax for greedy rows, an inverse-CDF draw from the row's own generator otherwise."""
    chosen = logprobs.argmax(dim=-1)
    sampled = [slot for slot, row in enumerate(rows) if row.generator is not None]
    if sampled:
        temperatures = torch.tensor([rows[s].temperature for s in sampled], device=logprobs.device)
        probs = torch.softmax(logprobs[sampled] / temperatures[:, None], dim=-1)
        draws = torch.stack([torch.rand((), generator=rows[s].generator) for s in sampled]).to(logprobs.device)
        cumulative = probs.cumsum(dim=-1)
        picks = torch.searchsorted(cumulative, (draws * cumulative[:, -1])[:, None]).squeeze(1)
        chosen[sampled] = picks.clamp(max=logprobs.shape[-1] - 1)
    return chosen
