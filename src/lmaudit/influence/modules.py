"""Which layers influence is tracked on: linear layers of the white-box model, chosen by name patterns.

A tracked layer computes y = W a (+ b) at every position. `nn.Linear` stores W as (out, in); the GPT-2 family's
`Conv1D` stores it as (in, out); both are seen here in one layout, (out, in + 1 if there is a bias), with the
bias as the weight of a constant input 1, so every factor and gradient below has one shape per layer.

Output heads whose weight is the input embedding (tied embeddings) are left out unless asked for: their
gradient through the head is only part of the shared weight's gradient.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from lmaudit.core.errors import ConfigError


@dataclass(frozen=True)
class TrackedLayer:
    name: str
    kind: str  # "linear" (weight out x in) or "conv1d" (weight in x out)
    in_features: int
    out_features: int
    bias: bool

    @property
    def in_dim(self) -> int:
        """Columns of the layer's gradient: the inputs, plus one for the bias."""
        return self.in_features + int(self.bias)

    @property
    def params(self) -> int:
        return self.out_features * self.in_dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _layer_kind(module: Any) -> str | None:
    import torch

    if isinstance(module, torch.nn.Linear):
        return "linear"
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers is there whenever the hf backend is
        return None
    return "conv1d" if isinstance(module, Conv1D) else None


def linear_layers(module: Any) -> dict[str, TrackedLayer]:
    """Every linear layer of a torch module by its qualified name, in module order."""
    found = {}
    for name, sub in module.named_modules():
        kind = _layer_kind(sub)
        if kind is None:
            continue
        weight = sub.weight
        out_features, in_features = weight.shape if kind == "linear" else weight.shape[::-1]
        found[name] = TrackedLayer(name, kind, int(in_features), int(out_features), sub.bias is not None)
    return found


def tied_layers(module: Any) -> set[str]:
    """Linear layers whose weight is also an embedding's weight (a tied output head)."""
    import torch

    embedding_weights = {id(sub.weight) for sub in module.modules() if isinstance(sub, torch.nn.Embedding)}
    return {name for name, sub in module.named_modules()
            if _layer_kind(sub) is not None and id(sub.weight) in embedding_weights}


def _matches(name: str, pattern: str) -> bool:
    """A pattern matches a full name or a dotted suffix of it: 'layers.*.mlp.*' matches 'model.layers.3.mlp.up_proj'."""
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, "*." + pattern)


def select_layers(module: Any, patterns: Sequence[str], *, include_tied: bool = False) -> list[TrackedLayer]:
    """The linear layers matching any of `patterns` (each may hold several, comma-separated), in module order; one
    clear error when none match."""
    patterns = [p.strip() for value in patterns for p in value.split(",") if p.strip()]
    if not patterns:
        raise ConfigError("no module pattern given: name the layers to track, e.g. --modules 'layers.*.mlp.*'")
    layers = linear_layers(module)
    tied = tied_layers(module)
    chosen = [layer for name, layer in layers.items()
              if any(_matches(name, p) for p in patterns) and (include_tied or name not in tied)]
    if not chosen:
        listing = ", ".join(_abbreviate(list(layers)))
        skipped = [name for name in tied if any(_matches(name, p) for p in patterns)]
        note = (f" ({', '.join(skipped)} matched but is tied to the input embedding; add --include-tied to track it)"
                if skipped else "")
        raise ConfigError(f"module pattern(s) {', '.join(repr(p) for p in patterns)} match no linear layer{note}. "
                          f"The model's linear layers: {listing}")
    return chosen


def _abbreviate(names: list[str]) -> list[str]:
    """Names with the layer index folded ('model.layers.{0..29}.mlp.up_proj'), so a listing stays one line."""
    import re

    groups: dict[str, list[int]] = {}
    order: list[str] = []
    for name in names:
        match = re.search(r"\.(\d+)\.", name)
        key = name if match is None else name[:match.start()] + ".{}." + name[match.end():]
        if key not in groups:
            groups[key] = []
            order.append(key)
        if match is not None:
            groups[key].append(int(match.group(1)))
    out = []
    for key in order:
        indices = groups[key]
        if not indices:
            out.append(key)
        else:
            span = f"{min(indices)}..{max(indices)}" if len(indices) > 1 else str(indices[0])
            out.append(key.replace("{}", "{" + span + "}" if len(indices) > 1 else span))
    return out


def describe_layers(layers: Sequence[TrackedLayer]) -> str:
    names = _abbreviate([layer.name for layer in layers])
    params = sum(layer.params for layer in layers)
    return f"{len(layers)} layers ({', '.join(names)}), {params:,} parameters"
