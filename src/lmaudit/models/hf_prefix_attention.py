"""Attention for packed suffixes that all continue one cached prefix (the hf backend's log-likelihood path).

The suffixes of a group are packed end to end into one row, so the decoder's matrix products run on real tokens
only (right-padded rows of very different lengths wasted about 40% of them on 5-shot MMLU). Each packed token
attends to the whole prefix and causally to its own suffix, never to another suffix: one fused
scaled-dot-product attention over the keys [prefix; packed row] with a boolean mask built once per packing
(shared by every layer), grouped query heads reading their key/value head directly. The prefix's keys are
read from the cache once per layer, never copied per suffix. Exact up to float rounding; one fused call took
two thirds of the time of the two-part softmax it replaced (5-shot MMLU shapes, one thread).

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
    """Where each suffix lies in the packed row, and what each packed token may attend to."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer the prefix's (keys, values), (kv_heads, P, dim)
    starts: list[int]  # packed offset of each suffix
    mask: torch.Tensor  # (packed, P + packed) bool: the prefix, then the causal part of the token's own suffix
    position_ids: torch.Tensor  # (1, packed): prefix length + position within the suffix


def pack(lengths: list[int], prefix_len: int, layers: list, device: torch.device) -> Packing:
    sizes = torch.tensor(lengths, device=device)
    suffix = torch.repeat_interleave(torch.arange(len(lengths), device=device), sizes)
    packed = len(suffix)
    order = torch.arange(packed, device=device)
    own = (suffix[:, None] == suffix[None, :]) & (order[None, :] <= order[:, None])
    mask = torch.cat([torch.ones(packed, prefix_len, dtype=torch.bool, device=device), own], dim=1)
    offsets = torch.cumsum(sizes, 0) - sizes
    return Packing(layers, offsets.tolist(), mask, (prefix_len + order - offsets[suffix])[None, :])


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
    keys = torch.cat([prefix_keys, key[0]], dim=1).unsqueeze(0)
    values = torch.cat([prefix_values, value[0]], dim=1).unsqueeze(0)
    out = torch.nn.functional.scaled_dot_product_attention(query, keys, values, attn_mask=packing.mask,
                                                           scale=scaling, enable_gqa=True)
    # transformers expects (batch, positions, heads, dim).
    return out.transpose(1, 2), None


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
