"""Attention for packed suffixes that all continue one cached prefix (the hf backend's log-likelihood path).

The suffixes of a group are packed end to end into one row, so the decoder's matrix products run on real tokens
only (right-padded rows of very different lengths wasted about 40% of them on 5-shot MMLU). Each packed token
attends to the whole prefix and causally to its own suffix, never to another suffix.

On the CPU that attention is computed in two exact parts and merged by their log-sum-exps: every packed token
against the prefix in one unmasked flash-attention call (each key/value head's query heads folded into the
sequence axis, so the prefix's keys are read in place and never repeated), and each suffix causally against
itself. Softmax over the union of two key sets is the two parts' outputs weighted by sigmoid(lse_1 - lse_2).
No pair of tokens from different suffixes is computed: one masked call over [prefix; packed row] spent about
two thirds of its work on such pairs (5-shot MMLU, 20 suffixes of 30-125 tokens: 82 against 30 ms per layer,
one thread). Elsewhere (an accelerator, or a torch without the CPU kernel that returns log-sum-exps) one fused
scaled-dot-product attention with a boolean mask does the same. Exact up to float rounding.

It is installed as a transformers attention implementation and chosen per call (`shared_prefix_attention`); any
call without a prefix (another thread's forward while one runs) falls through to SDPA.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

IMPLEMENTATION = "lmaudit_shared_prefix"
_lock = threading.Lock()
_registered = False
# Flash attention on the CPU that also returns each query's log-sum-exp (torch's own kernel behind SDPA).
_CPU_FLASH = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


@dataclass
class Packing:
    """Where each suffix lies in the packed row."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer the prefix's (keys, values), (kv_heads, P, dim)
    starts: list[int]  # packed offset of each suffix
    lengths: list[int]
    suffix: torch.Tensor  # (packed,): which suffix each packed token belongs to
    position_ids: torch.Tensor  # (1, packed): prefix length + position within the suffix

    @cached_property
    def mask(self) -> torch.Tensor:
        """(packed, P + packed) bool: the prefix, then the causal part of the token's own suffix (fused path)."""
        suffix, device = self.suffix, self.suffix.device
        order = torch.arange(len(suffix), device=device)
        own = (suffix[:, None] == suffix[None, :]) & (order[None, :] <= order[:, None])
        prefix_len = self.layers[0][0].shape[1]
        return torch.cat([torch.ones(len(suffix), prefix_len, dtype=torch.bool, device=device), own], dim=1)


def pack(lengths: list[int], prefix_len: int, layers: list, device: torch.device) -> Packing:
    sizes = torch.tensor(lengths, device=device)
    offsets = torch.cumsum(sizes, 0) - sizes
    suffix = torch.repeat_interleave(torch.arange(len(lengths), device=device), sizes)
    order = torch.arange(len(suffix), device=device)
    return Packing(layers, offsets.tolist(), list(lengths), suffix, (prefix_len + order - offsets[suffix])[None, :])


def supports_shared_prefix(config: Any) -> bool:
    """Plain causal attention only: sliding windows, soft-capped scores or alibi need transformers' own kernels."""
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    for attribute in ("sliding_window", "attn_logit_softcapping", "alibi", "use_alibi"):
        if getattr(config, attribute, None):
            return False
    return True


def _two_part(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, prefix_keys: torch.Tensor,
              prefix_values: torch.Tensor, packing: Packing, scaling: float | None) -> torch.Tensor:
    """(1, heads, packed, dim): the prefix part and the suffixes' own parts, merged by their log-sum-exps."""
    _, heads, packed, dim = query.shape
    kv_heads = prefix_keys.shape[0]
    folded = query.reshape(1, kv_heads, heads // kv_heads * packed, dim)
    to_prefix, prefix_lse = _CPU_FLASH(folded, prefix_keys[None], prefix_values[None], scale=scaling)
    to_prefix, prefix_lse = to_prefix.reshape(1, heads, packed, dim), prefix_lse.reshape(1, heads, packed)
    # Each suffix against itself: views into the packed row, grouped query heads read their key/value head.
    parts = [_CPU_FLASH(query[:, :, start:start + length], key[:, :, start:start + length],
                        value[:, :, start:start + length], is_causal=True, scale=scaling)
             for start, length in zip(packing.starts, packing.lengths)]
    to_self = torch.cat([out for out, _ in parts], dim=2)
    self_lse = torch.cat([lse for _, lse in parts], dim=2)
    # softmax over prefix and own keys = the two parts weighted by exp(lse_1) : exp(lse_2)
    weight = torch.sigmoid(prefix_lse - self_lse).to(query.dtype)[..., None]
    return torch.lerp(to_self, to_prefix, weight)


def _attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
               **kwargs: Any) -> tuple[torch.Tensor, None]:
    packing: Packing | None = kwargs.pop("packing", None)
    if packing is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    prefix_keys, prefix_values = packing.layers[module.layer_idx]
    if query.device.type == "cpu" and _CPU_FLASH is not None:
        out = _two_part(query, key, value, prefix_keys, prefix_values, packing, scaling)
    else:
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
