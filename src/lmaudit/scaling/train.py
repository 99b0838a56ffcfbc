"""Train one decoder-only Transformer (transformers' Llama) on CPU: seeded, checkpointed, resumable.

Everything that decides a run's result (initialisation, the order of training windows, the learning-rate
schedule) is a function of the RunSpec and the step number, so a run resumed from a checkpoint continues
exactly where it stopped.

The same loop continues training an existing causal LM (`train_run(..., start=white_box_model)`): the run starts
from a copy of the model's weights instead of a fresh Llama, optionally trains only its top decoder layers (the
rest frozen), and saves the result with the model's own tokenizer, so `hf:<out_dir>` loads it.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.models.base import WhiteBoxModel
from lmaudit.scaling.runs import CurvePoint, RunRecord

CHECKPOINT = "checkpoint.pt"
RECORD = "run.json"


@dataclass(frozen=True)
class ModelShape:
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int

    def non_embedding_params(self) -> int:
        """Parameters outside the token embedding and the output head (Kaplan et al.'s N).

        Per layer: q, k, v, o projections (4 d^2), the gated MLP (3 d d_ff) and two RMSNorm weights; plus the
        final norm.
        """
        d = self.d_model
        return self.n_layers * (4 * d * d + 3 * d * self.d_ff + 2 * d) + d

    @classmethod
    def of(cls, config: Any) -> "ModelShape":
        """The shape of an existing model, from its transformers config (for the records of a fine-tuning run)."""
        return cls(config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
                   config.intermediate_size)


@dataclass(frozen=True)
class RunSpec:
    """One training run. `tokens` is rounded up to whole batches (see `steps`)."""

    name: str
    shape: ModelShape
    tokens: int
    lr: float
    batch_size: int = 16
    seq_len: int = 128
    warmup_fraction: float = 0.05
    final_lr_fraction: float = 0.1
    weight_decay: float = 0.1
    init_std: float = 0.02
    seed: int = 0
    start_from: str | None = None  # fine-tuning: the fingerprint of the model the run continues from
    trainable_layers: int | None = None  # fine-tuning: train only the top N decoder layers (None: every weight)

    @property
    def steps(self) -> int:
        return max(1, math.ceil(self.tokens / (self.batch_size * self.seq_len)))

    @property
    def trained_tokens(self) -> int:
        return self.steps * self.batch_size * self.seq_len

    def lr_at(self, step: int) -> float:
        """Linear warmup, then cosine decay to final_lr_fraction * lr at the last step."""
        warmup = max(1, round(self.warmup_fraction * self.steps))
        if step < warmup:
            return self.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, self.steps - 1 - warmup)
        floor = self.final_lr_fraction
        return self.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        for name in ("start_from", "trainable_layers"):  # left out when unset, so older run records still match
            if raw[name] is None:
                del raw[name]
        return raw


@dataclass(frozen=True)
class TokenData:
    """Token streams shared by every run of a ladder, and the folder of the tokenizer that made them (None when
    the runs continue an existing model, which brings its own tokenizer)."""

    train: np.ndarray
    heldout: np.ndarray
    tokenizer_dir: Path | None
    vocab_size: int


def llama_config(shape: ModelShape, vocab_size: int, seq_len: int, init_std: float = 0.02) -> Any:
    from transformers import LlamaConfig

    if shape.d_model % shape.n_heads:
        raise ConfigError(f"d_model {shape.d_model} is not divisible by n_heads {shape.n_heads}")
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=shape.d_model, intermediate_size=shape.d_ff,
        num_hidden_layers=shape.n_layers, num_attention_heads=shape.n_heads, num_key_value_heads=shape.n_heads,
        max_position_embeddings=seq_len, tie_word_embeddings=False, bos_token_id=0, eos_token_id=0,
        pad_token_id=0, attention_dropout=0.0, initializer_range=init_std,
    )


def _windows(stream: np.ndarray, seq_len: int) -> int:
    return (len(stream) - 1) // seq_len


def _batch(stream: np.ndarray, starts: np.ndarray, seq_len: int) -> Any:
    import torch

    rows = np.stack([stream[s:s + seq_len + 1] for s in starts]).astype(np.int64)
    return torch.from_numpy(rows)


def _train_batch(spec: RunSpec, stream: np.ndarray, step: int) -> Any:
    """Windows for `step`: window order is a fresh seeded permutation per epoch, so it depends on the step only."""
    n = _windows(stream, spec.seq_len)
    if n < spec.batch_size:
        raise DataError(f"training data has {n} windows of {spec.seq_len} tokens, fewer than one batch "
                        f"({spec.batch_size}); use a larger corpus or a smaller batch")
    first = step * spec.batch_size
    starts = []
    for index in range(first, first + spec.batch_size):
        epoch, position = divmod(index, n)
        order = _epoch_order(spec.seed, epoch, n)
        starts.append(int(order[position]) * spec.seq_len)
    return _batch(stream, np.asarray(starts), spec.seq_len)


_ORDER_CACHE: dict[tuple[int, int, int], np.ndarray] = {}


def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    key = (seed, epoch, n)
    if key not in _ORDER_CACHE:
        _ORDER_CACHE.clear()  # one epoch at a time is enough; keeps memory flat on long runs
        _ORDER_CACHE[key] = np.random.default_rng([seed, epoch]).permutation(n)
    return _ORDER_CACHE[key]


def heldout_windows(stream: np.ndarray, seq_len: int, max_tokens: int) -> np.ndarray:
    """Start offsets of evaluation windows spread evenly over the held-out stream (every document is sampled)."""
    n = _windows(stream, seq_len)
    if n < 1:
        raise DataError(f"held-out data has {len(stream)} tokens, fewer than one window of {seq_len + 1}")
    count = max(1, min(n, max_tokens // seq_len))
    return np.linspace(0, n - 1, count).round().astype(np.int64) * seq_len


def evaluate(model: Any, stream: np.ndarray, starts: np.ndarray, seq_len: int, batch_size: int = 32) -> float:
    """Mean next-token cross-entropy (nats per token) over the given windows."""
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(starts), batch_size):
            rows = _batch(stream, starts[i:i + batch_size], seq_len).to(device)
            logits = model(input_ids=rows[:, :-1]).logits
            total += float(F.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten(), reduction="sum"))
            count += rows[:, 1:].numel()
    model.train(was_training)
    return total / count


def _build(spec: RunSpec, vocab_size: int) -> tuple[Any, Any]:
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(llama_config(spec.shape, vocab_size, spec.seq_len, spec.init_std))
    return model, _optimizer(spec, model)


def _optimizer(spec: RunSpec, model: Any) -> Any:
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.dim() >= 2]
    no_decay = [p for p in trainable if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": spec.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=spec.lr, betas=(0.9, 0.95), eps=1e-8)


def decoder_layers(model: Any) -> Any:
    """The stack of decoder layers of a transformers causal LM: its ModuleList of num_hidden_layers blocks."""
    import torch

    count = model.config.num_hidden_layers
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    raise ConfigError(f"{type(model).__name__} has no list of {count} decoder layers; train every weight instead "
                      f"(trainable_layers=None)")


def freeze_below(model: Any, top_layers: int) -> None:
    """Train only the top `top_layers` decoder layers and the final norm (what lies between them and the output
    head): embeddings, lower layers and the head are frozen, so a tied head leaves the input embeddings alone."""
    import torch

    layers = decoder_layers(model)
    if not 1 <= top_layers <= len(layers):
        raise ConfigError(f"trainable_layers must be in 1..{len(layers)} for this model, got {top_layers}")
    model.requires_grad_(False)
    for layer in layers[len(layers) - top_layers:]:
        layer.requires_grad_(True)
    decoder = model.get_decoder()
    for child in decoder.children():
        if child is not layers and not isinstance(child, torch.nn.Embedding):
            child.requires_grad_(True)


def _build_from(spec: RunSpec, start: WhiteBoxModel) -> tuple[Any, Any]:
    """A copy of an existing model (the caller's stays as it is), frozen below the trainable layers."""
    import copy

    import torch

    if spec.start_from != start.fingerprint():
        raise ConfigError(f"run {spec.name} continues model {spec.start_from}, but the model given is "
                          f"{start.fingerprint()}")
    if spec.seq_len > start.max_length:
        raise ConfigError(f"seq_len {spec.seq_len} is longer than the model's context ({start.max_length})")
    torch.manual_seed(spec.seed)
    model = copy.deepcopy(start.module)
    if spec.trainable_layers is not None:
        freeze_below(model, spec.trainable_layers)
    else:
        model.requires_grad_(True)
    return model, _optimizer(spec, model)


def count_non_embedding(model: Any) -> int:
    return sum(p.numel() for name, p in model.named_parameters()
               if "embed_tokens" not in name and "lm_head" not in name)


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_record(out_dir: str | Path) -> RunRecord | None:
    """The finished run in `out_dir`, or None if it has not finished."""
    path = Path(out_dir) / RECORD
    if not path.exists():
        return None
    return RunRecord.from_dict(json.loads(path.read_text()))


def train_run(spec: RunSpec, data: TokenData, out_dir: str | Path, *, heldout_tokens: int = 131072,
              curve_points: int = 8, checkpoint_seconds: float = 120.0, threads: int = 2,
              stop_after_steps: int | None = None, progress: bool = True, role: str = "ladder",
              start: WhiteBoxModel | None = None) -> RunRecord | None:
    """Train (or resume, or reuse) the run in `out_dir` and save it in Hugging Face format there.

    With `start`, the run continues that model (`spec.start_from` must be its fingerprint, `spec.shape` is
    informative) on `data`, which must be tokenized with its tokenizer; checkpoints then hold only the trained
    weights. Returns the run's record; None if `stop_after_steps` paused it first (it stays resumable from its
    checkpoint).
    """
    import torch
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = load_record(out)
    if done is not None and done.config.get("spec") == spec.to_dict():
        return done
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:  # the thread count is the caller's again afterwards, whatever happened
        if (start is None) != (spec.start_from is None):
            raise ConfigError(f"run {spec.name}: give the starting model exactly when the spec names one (start_from)")
        model, optimizer = _build(spec, data.vocab_size) if start is None else _build_from(spec, start)
        device = next(model.parameters()).device
        trained = {name for name, p in model.named_parameters() if p.requires_grad}
        n_params = count_non_embedding(model)
        if start is None and n_params != spec.shape.non_embedding_params():
            raise ConfigError(f"model has {n_params} non-embedding parameters, shape formula says "
                              f"{spec.shape.non_embedding_params()}; the Llama layout changed")
        eval_starts = heldout_windows(data.heldout, spec.seq_len, heldout_tokens)
        curve_starts = eval_starts[::4]  # cheaper intermediate evaluations
        curve_steps = set(np.linspace(0, spec.steps, curve_points + 1).round().astype(int)[1:-1].tolist())

        step, wall, curve, recent = 0, 0.0, [], []
        started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        ckpt_path = out / CHECKPOINT
        if ckpt_path.exists():
            state = torch.load(ckpt_path, weights_only=False)
            if state["spec"] != spec.to_dict():
                raise ConfigError(f"{ckpt_path} belongs to a run with other settings; delete it or use another folder")
            model.load_state_dict(state["model"], strict=start is None)  # a fine-tune saved its trained weights only
            optimizer.load_state_dict(state["optimizer"])
            step, wall, started_at = state["step"], state["wall"], state["started_at"]
            curve = [CurvePoint(**p) for p in state["curve"]]

        def checkpoint() -> None:
            weights = model.state_dict() if start is None else {
                name: p.detach() for name, p in model.named_parameters() if name in trained}
            _atomic_save({"spec": spec.to_dict(), "model": weights, "optimizer": optimizer.state_dict(),
                          "step": step, "wall": wall, "started_at": started_at, "curve": [asdict(p) for p in curve]},
                         ckpt_path)

        model.train()
        last_save = time.monotonic()
        bar = tqdm(total=spec.steps, initial=step, desc=spec.name, disable=not progress, leave=False, unit="step")
        stop = spec.steps if stop_after_steps is None else min(spec.steps, step + stop_after_steps)
        while step < stop:
            started = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = spec.lr_at(step)
            rows = _train_batch(spec, data.train, step).to(device)
            logits = model(input_ids=rows[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten())
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            last_loss = loss.item()
            recent.append(last_loss)
            if step in curve_steps:
                heldout = evaluate(model, data.heldout, curve_starts, spec.seq_len)
                curve.append(CurvePoint(step, step * spec.batch_size * spec.seq_len, float(np.mean(recent)), heldout))
                recent = []
            wall += time.perf_counter() - started
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.3f}")
            if time.monotonic() - last_save > checkpoint_seconds:
                checkpoint()
                last_save = time.monotonic()
        bar.close()
        if step < spec.steps:
            checkpoint()
            return None

        started = time.perf_counter()
        final = evaluate(model, data.heldout, eval_starts, spec.seq_len)
        wall += time.perf_counter() - started
        curve.append(CurvePoint(step, spec.trained_tokens, float(np.mean(recent)) if recent else math.nan, final))
        _save_model(model, start.tokenizer if start is not None else data.tokenizer_dir, out)
        fine_tune = {} if start is None else {"trainable_params": sum(p.numel() for p in model.parameters()
                                                                      if p.requires_grad)}
        record = RunRecord(
            name=spec.name, loss=final, n_params=n_params, tokens=spec.trained_tokens,
            compute=6.0 * n_params * spec.trained_tokens, wall_seconds=wall, role=role,
            config={"spec": spec.to_dict(), "started_at": started_at,
                    "heldout_tokens": int(len(eval_starts) * spec.seq_len),
                    "total_params": sum(p.numel() for p in model.parameters()), **fine_tune},
            loss_curve=tuple(curve),
        )
        (out / RECORD).write_text(json.dumps(record.to_dict(), indent=1) + "\n")
        ckpt_path.unlink(missing_ok=True)
        return record
    finally:
        torch.set_num_threads(previous_threads)


def _save_model(model: Any, tokenizer: Any, out: Path) -> None:
    """The model and its tokenizer (an object, or the folder of the ladder's) as a Hugging Face folder."""
    from lmaudit.scaling.tokenizer import load_tokenizer

    model.config.architectures = [type(model).__name__]
    model.save_pretrained(out)
    (load_tokenizer(tokenizer) if isinstance(tokenizer, (str, Path)) else tokenizer).save_pretrained(out)
