"""One forward and backward pass over a batch of token sequences, keeping what influence needs per tracked layer.

For a tracked layer with output s_t = W a_t at position t, the gradient of a loss L with respect to W is
sum_t g_t a_t^T with g_t = dL/ds_t. Rather than materialise that for every sequence, the pass keeps the layer's
inputs a (batch, positions, in) and output gradients g (batch, positions, out); every factor, per-sequence
gradient and per-token score below is a product of the two.

Only what is needed is differentiated: the weights are frozen for the pass, the input of the lowest tracked
layers is made a leaf, and `torch.autograd.grad` asks for the tracked outputs' gradients alone, so the backward
pass stops at the lowest tracked layer and computes no weight gradient.

Losses are sums over the predicted positions (a sequence's loss is the sum of its tokens' losses). The fitting
loss reads labels from the data (empirical Fisher) or samples them from the model's own distribution at each
position (true Fisher), with a generator seeded per sequence, so a label never depends on batch or shard.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lmaudit.core.errors import ConfigError
from lmaudit.influence.modules import TrackedLayer


@dataclass
class BatchGradients:
    """Per-layer tensors for one batch, right-padded to a common width (padding rows are zero)."""

    lengths: list[int]
    inputs: dict[str, Any]  # layer -> (B, T, in_dim), float32 (float64 for a float64 model), bias column last
    fit_grads: dict[str, Any] | None  # layer -> (B, T, out): gradient of the fitting loss (Fisher labels)
    data_grads: dict[str, Any] | None  # layer -> (B, T, out): gradient of the loss on the data's own labels
    input_groups: dict[str, str]  # layer -> the first layer that reads the very same input tensor
    data_loss: Any  # (B,) float64: each sequence's summed negative log-likelihood of its target tokens
    basis: str = "original"  # or "eigen": inputs a Q_A and gradients g Q_S (see factors.rotate_batch)

    @property
    def tokens(self) -> int:
        return sum(self.lengths)


def sequence_grads(grads: Any, inputs: Any) -> Any:
    """Per-sequence weight gradients sum_t g_t a_t^T: (B, out, in_dim) from (B, T, out) and (B, T, in_dim)."""
    import torch

    return torch.bmm(grads.transpose(1, 2), inputs)


def length_batches(lengths: Sequence[int], batch_size: int, padding: float = 0.25) -> list[list[int]]:
    """Indices grouped into batches of at most `batch_size`, longest first, a batch closed early when right-padding
    it to its longest row would add more than `padding` x its real tokens (so that one long query does not make
    seven short ones pay for its length)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else None
        if current is not None and len(current) < batch_size:
            width = lengths[current[0]]
            real = sum(lengths[i] for i in current) + lengths[index]
            if width * (len(current) + 1) <= (1 + padding) * real:
                current.append(index)
                continue
        batches.append([index])
    return batches


@contextmanager
def grads_only_for(module: Any, parameters: Sequence[Any] = ()) -> Iterator[None]:
    """Only `parameters` (none by default) require a gradient during the pass: nothing is computed or kept for
    the other weights. Every flag is restored afterwards."""
    saved = [(p, p.requires_grad) for p in module.parameters()]
    for parameter, _ in saved:
        parameter.requires_grad_(False)
    for parameter in parameters:
        parameter.requires_grad_(True)
    try:
        yield
    finally:
        for parameter, flag in saved:
            parameter.requires_grad_(flag)


class _Recorder:
    """Forward hooks on the tracked layers: each records its input and its (differentiable) output once."""

    def __init__(self, module: Any, layers: Sequence[TrackedLayer]):
        self.named = dict(module.named_modules())
        self.layers = layers
        self.inputs: dict[str, Any] = {}
        self.outputs: dict[str, Any] = {}
        self.handles: list[Any] = []

    def __enter__(self) -> _Recorder:
        for layer in self.layers:
            target = self.named[layer.name]
            self.handles.append(target.register_forward_pre_hook(self._make_leaf))
            self.handles.append(target.register_forward_hook(self._recorder(layer.name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()

    @staticmethod
    def _make_leaf(_module: Any, args: tuple) -> tuple | None:
        # Nothing below this layer is tracked: differentiate from here up, and no further down.
        if args and not args[0].requires_grad:
            return (args[0].detach().requires_grad_(),) + tuple(args[1:])
        return None

    def _recorder(self, name: str) -> Any:
        def hook(_module: Any, args: tuple, output: Any) -> None:
            if name in self.outputs:
                raise ConfigError(f"layer {name} runs more than once per forward pass (shared weights); "
                                  f"influence tracks layers that run once")
            self.inputs[name] = args[0]
            self.outputs[name] = output

        return hook


def batch_gradients(model: Any, layers: Sequence[TrackedLayer], rows: Sequence[Sequence[int]], *,
                    targets_from: Sequence[int] | None = None, fit: str | None = "empirical",
                    data: bool = True, seeds: Sequence[int] | None = None) -> BatchGradients:
    """Run `rows` (token ids) through the model and differentiate the losses asked for.

    `targets_from[b]` is the first token of row b that is a target (predicted and scored); 1 for training
    sequences, len(prompt) for a query. `fit` is "empirical", "true" (labels sampled with `seeds[b]`) or None;
    `data` asks for the gradients of the loss on the row's own tokens.
    """
    import torch
    import torch.nn.functional as F

    if fit not in (None, "empirical", "true"):
        raise ConfigError(f"fisher must be 'empirical' or 'true', got {fit!r}")
    device = model.device
    lengths = [len(r) for r in rows]
    width = max(lengths)
    starts = list(targets_from) if targets_from is not None else [1] * len(rows)
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    ids = torch.tensor([list(r) + [pad] * (width - len(r)) for r in rows], device=device)
    # Position t predicts token t+1; it is scored when that token is a target of its row. Logits are computed
    # at scored positions only: a query's prompt and every row's padding never reach the vocabulary projection.
    following = torch.arange(1, width, device=device)
    lengths_t = torch.tensor(lengths, device=device)
    starts_t = torch.tensor(starts, device=device)
    scored = (following[None, :] >= starts_t[:, None]) & (following[None, :] < lengths_t[:, None])
    real = torch.arange(width, device=device)[None, :] < lengths_t[:, None]
    at = F.pad(scored, (0, 1))
    targets = ids[:, 1:][scored]
    row_of = torch.arange(len(rows), device=device)[:, None].expand_as(scored)[scored]

    module = model.module
    with grads_only_for(module), torch.enable_grad(), _Recorder(module, layers) as recorder:
        logits = model.forward(ids, positions=at)
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        logits = logits.to(dtype)
        outputs = [recorder.outputs[layer.name] for layer in layers]
        missing = [layer.name for layer in layers if layer.name not in recorder.outputs]
        if missing:
            raise ConfigError(f"layers {', '.join(missing)} did not run in the model's forward pass")
        data_nll = F.cross_entropy(logits, targets, reduction="none")
        fit_grads = data_grads = None
        if fit == "true":
            per_row = torch.log_softmax(logits.detach(), dim=-1).split(scored.sum(dim=1).tolist())
            labels = torch.cat(sample_labels(per_row, seeds))
            fit_loss = F.cross_entropy(logits, labels, reduction="sum")
            fit_grads = torch.autograd.grad(fit_loss, outputs, retain_graph=data)
        if data or fit == "empirical":
            data_grads = torch.autograd.grad(data_nll.sum(), outputs)
            if fit == "empirical":
                fit_grads = data_grads
        groups: dict[str, str] = {}
        first_reader: dict[tuple, str] = {}
        inputs = {}
        for layer in layers:
            raw = recorder.inputs[layer.name]
            key = (raw.data_ptr(), tuple(raw.shape), tuple(raw.stride()))
            groups[layer.name] = first_reader.setdefault(key, layer.name)
            if groups[layer.name] != layer.name:
                inputs[layer.name] = inputs[groups[layer.name]]
                continue
            values = raw.detach().to(dtype) * real[:, :, None]
            if layer.bias:
                values = torch.cat([values, real[:, :, None].to(dtype)], dim=-1)
            inputs[layer.name] = values

    def by_layer(grads: Any) -> dict[str, Any] | None:
        return None if grads is None else {layer.name: g.detach().to(dtype) for layer, g in zip(layers, grads)}

    fitted = by_layer(fit_grads)
    if not data:
        kept = None
    elif fit == "empirical":
        kept = fitted  # one set of gradients serves both (the replay cache counts them once)
    else:
        kept = by_layer(data_grads)
    losses = torch.zeros(len(rows), dtype=torch.float64, device=device)
    losses.index_add_(0, row_of, data_nll.detach().double())
    return BatchGradients(lengths, inputs, fitted, kept, groups, losses.cpu())


def sample_labels(logprobs: Sequence[Any], seeds: Sequence[int] | None) -> list[Any]:
    """One label per position from the model's distribution: `logprobs` holds each row's (positions, vocabulary)
    log-probabilities, and each row draws from its own seeded generator."""
    import torch

    if seeds is None:
        raise ConfigError("the true Fisher samples labels: give one seed per sequence")
    labels = []
    for row, seed in zip(logprobs, seeds):
        if len(row) == 0:
            labels.append(torch.zeros(0, dtype=torch.long, device=row.device))
            continue
        generator = torch.Generator(device=row.device).manual_seed(int(seed))
        labels.append(torch.multinomial(row.exp(), 1, generator=generator).squeeze(-1))
    return labels
