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
from functools import cache
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


def gradient_dtype(model: Any) -> Any:
    """The precision of the kept inputs and gradients: float64 for a float64 model, float32 otherwise."""
    return precision_of(next(model.module.parameters()).dtype)


def precision_of(dtype: Any) -> Any:
    """float64 for float64, float32 for every other (lower) precision."""
    import torch

    return torch.float64 if dtype == torch.float64 else torch.float32


def sequence_grads(grads: Any, inputs: Any) -> Any:
    """Per-sequence weight gradients sum_t g_t a_t^T: (B, out, in_dim) from (B, T, out) and (B, T, in_dim)."""
    import torch

    return torch.bmm(grads.transpose(1, 2), inputs)


def tracks_output_head(module: Any, layers: Sequence[TrackedLayer]) -> bool:
    """Whether the model's output head (a tied one, asked for) is among the tracked layers."""
    head = module.get_output_embeddings()
    return any(module.get_submodule(layer.name) is head for layer in layers)


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
    counts = scored.sum(dim=1).tolist()
    dtype = gradient_dtype(model)
    with grads_only_for(module), torch.enable_grad(), _Recorder(module, layers) as recorder:
        if tracks_output_head(module, layers):  # its hooks must see every position in one call, in the graph
            losses = _plain_losses(model.forward(ids)[at].to(dtype), targets, counts,
                                   seeds if fit == "true" else None)
        else:
            hidden = model.hidden_states(ids, positions=at)
            losses = position_losses(model.logits, hidden, targets, counts, seeds if fit == "true" else None,
                                     (data or fit == "empirical", fit == "true"))
        outputs = [recorder.outputs[layer.name] for layer in layers]
        missing = [layer.name for layer in layers if layer.name not in recorder.outputs]
        if missing:
            raise ConfigError(f"layers {', '.join(missing)} did not run in the model's forward pass")
        data_nll = losses[0]
        fit_grads = data_grads = None
        if fit == "true":
            fit_grads = torch.autograd.grad(losses[1].sum(), outputs, retain_graph=data)
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


def _plain_losses(logits: Any, targets: Any, counts: Sequence[int], seeds: Sequence[int] | None) -> Any:
    """(1 or 2, positions) token losses from whole logits: the data's labels, then sampled ones with `seeds`."""
    import torch
    import torch.nn.functional as F

    losses = [F.cross_entropy(logits, targets, reduction="none")]
    if seeds is not None:
        per_row = torch.log_softmax(logits.detach(), dim=-1).split(list(counts))
        losses.append(F.cross_entropy(logits, torch.cat(sample_labels(per_row, seeds)), reduction="none"))
    return torch.stack(losses)


def position_losses(head: Any, hidden: Any, targets: Any, counts: Sequence[int], seeds: Sequence[int] | None,
                    wanted: tuple[bool, bool] = (True, True)) -> Any:
    """Token losses (1 or 2, positions), differentiable with respect to `hidden` (positions, width): row 0 for the
    data's labels, row 1 (with `seeds`) for labels sampled from the model, one seeded generator per sequence.

    The same values as `_plain_losses(head(hidden), ...)`, but the head runs over one sequence's positions at a
    time: a batch's logits over a large vocabulary (8 x 128 positions x 49,152 words: 200 MB) are never whole,
    and each sequence's buffers are the size of the one before. Since each loss is a sum of per-position terms
    and every caller differentiates it right away, the gradient of each term with respect to its own hidden
    state (the softmax minus the one-hot label, back through the head) is computed in the same pass, while the
    softmax is at hand: the backward pass only scales those saved gradients. `wanted[k]`: row k is
    differentiated (a row that is not still has its values)."""
    return _position_losses_function().apply(hidden, head, targets, tuple(counts),
                                             None if seeds is None else tuple(seeds), tuple(wanted))


@cache
def _position_losses_function() -> Any:
    import torch

    class PositionLosses(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, hidden: Any, head: Any, targets: Any, counts: tuple, seeds: tuple | None,
                    wanted: tuple) -> Any:
            rows = 1 if seeds is None else 2
            dtype = precision_of(hidden.dtype)
            losses = torch.zeros(rows, len(targets), dtype=dtype, device=hidden.device)
            saved = [hidden.new_zeros(len(targets), hidden.shape[-1]) if wanted[k] else None for k in range(rows)]
            differentiated = [k for k in range(rows) if wanted[k]]
            start = 0
            for index, count in enumerate(counts):
                if count == 0:
                    continue
                end = start + count
                with torch.enable_grad():
                    state = hidden[start:end].detach().requires_grad_()
                    logits = head(state)
                logprobs = torch.log_softmax(logits.detach().to(dtype), dim=-1)
                labels = [targets[start:end]]
                if seeds is not None:
                    labels += sample_labels([logprobs], [seeds[index]])
                at = torch.arange(count, device=hidden.device)
                for k, label in enumerate(labels):
                    losses[k, start:end] = -logprobs[at, label]
                if differentiated:
                    softmax = logprobs.exp_()
                    for k in differentiated:
                        last = k == differentiated[-1]
                        grad = softmax if last else softmax.clone()
                        grad[at, labels[k]] -= 1.0
                        saved[k][start:end] = torch.autograd.grad(logits, state, grad.to(logits.dtype),
                                                                  retain_graph=not last)[0]
                start = end
            ctx.saved = saved
            return losses

        @staticmethod
        def backward(ctx: Any, grad: Any) -> tuple:
            total = None
            for k, per_position in enumerate(ctx.saved):
                if per_position is None:
                    continue
                term = grad[k].to(per_position.dtype)[:, None] * per_position
                total = term if total is None else total + term
            return total, None, None, None, None, None

    return PositionLosses


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
