"""What each stage will hold in memory, said before it starts, and a clear refusal when it will not fit.

The figures are estimates from shapes (tracked layers, batch, sequence length, queries, model config), not
measurements; they are meant to be within a small factor, and err on the large side.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lmaudit.core.errors import ConfigError
from lmaudit.influence.gradients import tracks_output_head
from lmaudit.influence.modules import TrackedLayer

FLOAT32, FLOAT64 = 4, 8
HEADROOM = 0.9  # refuse above this share of what is available


def available_bytes(device: Any = None) -> int:
    """Free memory where the stage runs: the GPU's free memory, or the host's MemAvailable."""
    if device is not None and getattr(device, "type", "cpu") == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"  # pragma: no cover


@dataclass
class StagePlan:
    stage: str
    items: dict[str, int] = field(default_factory=dict)
    available: int = 0

    @property
    def total(self) -> int:
        return sum(self.items.values())

    def line(self) -> str:
        parts = " + ".join(f"{name} {human(size)}" for name, size in self.items.items() if size)
        return f"memory for {self.stage}: {parts or 'nothing'} = {human(self.total)} of {human(self.available)} available"

    def check(self, log: Callable[[str], None] | None = None) -> None:
        if log is not None:
            log(self.line())
        if self.total > HEADROOM * self.available:
            largest = max(self.items, key=self.items.get)
            hint = _HINTS.get(largest.split(" ")[0], "track fewer modules")
            raise ConfigError(f"{self.stage} will not fit in memory: it needs about {human(self.total)} (largest: "
                              f"{largest} {human(self.items[largest])}) and {human(self.available)} is available; "
                              f"{hint}")


_HINTS = {
    "activations": "lower --batch-size or --seq-len",
    "batch": "lower --batch-size or --seq-len",
    "query": "give --query-rank (low-rank query gradients) or fewer queries per run",
    "factors": "track fewer modules (--modules) or use --strategy diagonal",
    "scores": "score fewer sequences (--candidates) or fewer queries per run",
}


def _config(model: Any, name: str, default: int) -> int:
    value = getattr(getattr(model.module, "config", None), name, None)
    return int(value) if isinstance(value, int) and value > 0 else default


def activation_bytes(model: Any, batch_size: int, width: int, whole_logits: bool = False) -> int:
    """A forward and backward pass of one batch: per layer the hidden states autograd keeps (about 12
    hidden-sized and 3 MLP-sized vectors per token, plus attention), and logits, their log-softmax and gradient
    for one sequence at a time (gradients.position_losses), or for the whole batch when the output head is
    tracked (`whole_logits`)."""
    hidden = _config(model, "hidden_size", 1024)
    layers = _config(model, "num_hidden_layers", 24)
    mlp = _config(model, "intermediate_size", 4 * hidden)
    heads = _config(model, "num_attention_heads", 16)
    vocab = _config(model, "vocab_size", 50000)
    per_token = layers * (12 * hidden + 3 * mlp + heads * width)
    head_positions = (batch_size if whole_logits else 1) * width
    return (batch_size * width * per_token + 3 * vocab * head_positions) * FLOAT32


def _input_dims(layers: Sequence[TrackedLayer], groups: dict[str, str] | None) -> list[int]:
    heads = {(groups or {}).get(layer.name, layer.name): layer.in_dim for layer in layers}
    return list(heads.values())


def batch_bytes(layers: Sequence[TrackedLayer], batch_size: int, width: int, gradient_sets: int,
                groups: dict[str, str] | None = None) -> int:
    """The captured inputs and output gradients of one batch, and one layer's per-sequence gradients."""
    inputs = sum(_input_dims(layers, groups)) * batch_size * width
    grads = sum(layer.out_features for layer in layers) * batch_size * width * gradient_sets
    per_sequence = 2 * max(layer.params for layer in layers) * batch_size
    return (inputs + grads + per_sequence) * FLOAT32


def factor_bytes(layers: Sequence[TrackedLayer], strategy: str, groups: dict[str, str] | None = None) -> int:
    if strategy == "identity":
        return 0
    elementwise = sum(layer.params for layer in layers) * FLOAT64
    if strategy == "diagonal":
        return 2 * elementwise
    squares = sum(d * d for d in _input_dims(layers, groups)) + sum(layer.out_features ** 2 for layer in layers)
    # sums and eigenvectors; ekfac's refitted eigenvalues and their running sums (kfac keeps two vectors)
    return 2 * squares * FLOAT64 + (2 * elementwise if strategy == "ekfac" else 0)


def query_bytes(layers: Sequence[TrackedLayer], queries: int, rank: int | None) -> int:
    if rank is None:
        return queries * sum(layer.params for layer in layers) * FLOAT32
    return queries * rank * sum(layer.out_features + layer.in_dim for layer in layers) * FLOAT32


def fit_plan(model: Any, layers: Sequence[TrackedLayer], strategy: str, stage: str, batch_size: int, width: int,
             groups: dict[str, str] | None = None) -> StagePlan:
    return StagePlan(f"fitting ({stage})", {
        "factors": factor_bytes(layers, strategy, groups),
        "activations": activation_bytes(model, batch_size, width, tracks_output_head(model.module, layers)),
        "batch gradients": batch_bytes(layers, batch_size, width, 1, groups),
    }, available_bytes(model.device))


def score_plan(model: Any, layers: Sequence[TrackedLayer], strategy: str, queries: int, sequences: int,
               rank: int | None, batch_size: int, width: int, groups: dict[str, str] | None = None) -> StagePlan:
    return StagePlan("scoring", {
        "factors": factor_bytes(layers, strategy, groups),
        "query gradients": query_bytes(layers, queries, rank),
        "activations": activation_bytes(model, batch_size, width, tracks_output_head(model.module, layers)),
        "batch gradients": batch_bytes(layers, batch_size, width, 1, groups),
        "scores": 2 * sequences * queries * (len(layers) + 1) * FLOAT64,
    }, available_bytes(model.device))


def replay_bytes(layers: Sequence[TrackedLayer], tokens: int, gradient_sets: int,
                 groups: dict[str, str] | None = None) -> int:
    """Keeping every batch's inputs and gradients of a pass, so a later pass can replay them."""
    per_token = sum(_input_dims(layers, groups)) + gradient_sets * sum(layer.out_features for layer in layers)
    return tokens * per_token * FLOAT32
