"""Attention for packed suffixes that all continue one cached prefix (the hf backend's log-likelihood path).

The suffixes of a group are packed end to end into one row, so the decoder's matrix products run on real tokens
only (right-padded rows of very different lengths wasted about 40% of them on 5-shot MMLU). Attention then has
two parts, merged with one softmax: every packed query against the single copy of the prefix's keys (one large
matrix product per key/value head; the prefix is never copied per row), and each suffix causally against itself,
computed in a small padded (suffix, position) layout so that no suffix sees another. Exact up to float rounding.

It is installed as a transformers attention implementation and chosen per call (`shared_prefix_attention`); any
call without a prefix (another thread's forward while one runs) falls through to SDPA.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

IMPLEMENTATION = "lmaudit_shared_prefix"
_lock = threading.Lock()
_registered = False


@dataclass
class Packing:
    """Where each suffix lies in the packed row, in the forms the attention and the reader need."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer the prefix's (keys, values), (kv_heads, P, dim)
    starts: list[int]  # packed offset of each suffix
    gather: torch.Tensor  # (suffixes, width): packed index of each (suffix, position); pads repeat the last token
    scatter: torch.Tensor  # (packed,): index into the flattened (suffix, position) layout of each packed token
    position_ids: torch.Tensor  # (1, packed): prefix length + position within the suffix


def pack(lengths: list[int], prefix_len: int, layers: list, device: torch.device) -> Packing:
    width = max(lengths)
    starts, gather, scatter, positions = [], [], [], []
    offset = 0
    for row, length in enumerate(lengths):
        starts.append(offset)
        gather.append([offset + min(i, length - 1) for i in range(width)])
        scatter.extend(row * width + i for i in range(length))
        positions.extend(range(prefix_len, prefix_len + length))
        offset += length
    return Packing(layers, starts, torch.tensor(gather, device=device), torch.tensor(scatter, device=device),
                   torch.tensor([positions], device=device))


def supports_shared_prefix(config: Any) -> bool:
    """Plain causal attention only: sliding windows, soft-capped scores or alibi need transformers' own kernels."""
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    for attribute in ("sliding_window", "attn_logit_softcapping", "alibi", "use_alibi"):
        if getattr(config, attribute, None):
            return False
    return True


def _attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
               **kwargs: Any) -> tuple[torch.Tensor, None]:
    packing: Packing | None = kwargs.pop("packing", None)
    if packing is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    prefix_keys, prefix_values = packing.layers[module.layer_idx]
    _, heads, packed, dim = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    scale = dim ** -0.5 if scaling is None else scaling
    # Head h reads key/value head h // group (transformers' repeat_kv order): layout (kv_head, group, token).
    grouped = (query[0] * scale).reshape(kv_heads, group * packed, dim)
    # Against the prefix: unnormalised softmax parts, (kv_head, group * token, ...).
    on_prefix = torch.bmm(grouped, prefix_keys.transpose(1, 2))
    top_prefix = on_prefix.amax(-1, keepdim=True)
    on_prefix.sub_(top_prefix).exp_()
    sum_prefix = on_prefix.sum(-1, keepdim=True)
    out_prefix = torch.bmm(on_prefix, prefix_values)
    # Each suffix against itself, in (kv_head, group, suffix, position) layout; causal, so pads are never seen.
    rows, width = packing.gather.shape
    local_q = grouped.view(kv_heads, group, packed, dim)[:, :, packing.gather]
    local_k = key[0][:, packing.gather].unsqueeze(1)
    local_v = value[0][:, packing.gather].unsqueeze(1)
    on_self = torch.matmul(local_q, local_k.transpose(-1, -2))
    future = torch.ones(width, width, dtype=torch.bool, device=query.device).triu_(1)
    on_self.masked_fill_(future, float("-inf"))
    top_self = on_self.amax(-1, keepdim=True)
    on_self.sub_(top_self).exp_()
    sum_self = on_self.sum(-1, keepdim=True)
    out_self = torch.matmul(on_self, local_v)

    def to_packed(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(kv_heads, group, rows * width, -1)[:, :, packing.scatter].reshape(kv_heads, group * packed, -1)

    top_self, sum_self, out_self = to_packed(top_self), to_packed(sum_self), to_packed(out_self)
    top = torch.maximum(top_prefix, top_self)
    weight_prefix, weight_self = (top_prefix - top).exp_(), (top_self - top).exp_()
    mixed = (out_prefix * weight_prefix + out_self * weight_self) / (sum_prefix * weight_prefix + sum_self * weight_self)
    # transformers expects (batch, positions, heads, dim).
    return mixed.view(heads, packed, dim).transpose(0, 1).unsqueeze(0), None


def _register() -> None:
    global _registered
    with _lock:
        if _registered:
            return
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

        AttentionInterface.register(IMPLEMENTATION, _attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(IMPLEMENTATION, sdpa_mask)
        _registered = True


def prefix_layers(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (keys, values) of a batch-1 prefix cache, without the batch dimension."""
    return [(layer.keys[0], layer.values[0]) for layer in cache.layers]


@contextmanager
def shared_prefix_attention(config: Any):
    """Switch the model to the shared-prefix implementation for the duration of one forward."""
    _register()
    previous = config._attn_implementation
    config._attn_implementation = IMPLEMENTATION
    try:
        yield
    finally:
        config._attn_implementation = previous
