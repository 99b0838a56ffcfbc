"""What a fitting pass adds up, batch by batch, and the checkpoint files of those running sums.

Each stage of `factors.FactorSettings.stages` turns a batch's kept inputs and output gradients
(`gradients.BatchGradients`) into float64 sums: the covariances a a^T and g g^T (K-FAC's factors), the squared
per-sequence gradients (diagonal), or their squares in the Kronecker eigenbasis (the EK-FAC refit). A stage's sums
over its chunks are saved as it goes, so that a killed fit resumes (`engine.run_stage`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from lmaudit.influence.gradients import BatchGradients, sequence_grads
from lmaudit.influence.modules import TrackedLayer


@dataclass
class Sums:
    """Running float64 sums of one fitting stage, and the counts (sequences, tokens) behind them. `upper`: every
    tensor is the upper triangle of a symmetric matrix (zeros below, as `gram` leaves it), saved packed: half the
    bytes of a checkpoint that the covariance stage writes at least once."""

    tensors: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"sequences": 0, "tokens": 0})
    upper: bool = False

    def add(self, other: Sums) -> None:
        """Fold `other` in. Its tensors are handed over (a key new here takes `other`'s tensor itself: a copy would
        be a fresh 19 MB allocation per 1536-wide factor and chunk, for nothing), so `other` must not be used after."""
        if not self.tensors:
            self.upper = other.upper
        for key, value in other.tensors.items():
            if key in self.tensors:
                self.tensors[key] += value
            else:
                self.tensors[key] = value
        for key, value in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + value

    def save(self, path: Path, **meta: Any) -> None:
        from safetensors.torch import save_file

        tmp = path.with_name(f".{path.name}.tmp")
        save_file({k: pack_upper(v) if self.upper else v.contiguous() for k, v in self.tensors.items()}, str(tmp),
                  metadata={"counts": json.dumps(self.counts), "meta": json.dumps(meta, sort_keys=True),
                            "upper": json.dumps(self.upper)})
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> tuple[Sums, dict[str, Any]]:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        upper = json.loads(metadata.get("upper", "false"))
        if upper:
            tensors = {key: unpack_upper(value) for key, value in tensors.items()}
        return cls(tensors, json.loads(metadata["counts"]), upper), json.loads(metadata["meta"])


@cache
def _upper_indices(n: int) -> tuple[Any, Any]:
    import torch

    rows, cols = torch.triu_indices(n, n)
    return rows, cols


def pack_upper(matrix: Any) -> Any:
    """The upper triangle of a square matrix, row by row, as one vector of n (n + 1) / 2 values."""
    rows, cols = _upper_indices(matrix.shape[-1])
    return matrix[rows.to(matrix.device), cols.to(matrix.device)]


def unpack_upper(packed: Any) -> Any:
    """The square matrix (zeros below the diagonal) whose upper triangle `pack_upper` packed."""
    import torch

    n = (math.isqrt(8 * packed.numel() + 1) - 1) // 2
    rows, cols = _upper_indices(n)
    matrix = torch.zeros(n, n, dtype=packed.dtype, device=packed.device)
    matrix[rows.to(packed.device), cols.to(packed.device)] = packed
    return matrix


def _batch_counts(batch: BatchGradients) -> dict[str, int]:
    return {"sequences": len(batch.lengths), "tokens": batch.tokens}


def covariance_sums(batch: BatchGradients, layers: Sequence[TrackedLayer]) -> Sums:
    """Sums of a a^T (once per distinct input: layers reading the same tensor share it) and of g g^T.

    The products are float64: output gradients that feed the residual stream can span seven orders of
    magnitude across directions, and float32 products leave errors larger than the small eigenvalues there.
    """
    sums = Sums(counts=_batch_counts(batch), upper=True)
    for layer in layers:
        head = batch.input_groups[layer.name]
        if f"A:{head}" not in sums.tensors:
            sums.tensors[f"A:{head}"] = gram(batch.inputs[head].flatten(0, 1))
        sums.tensors[f"S:{layer.name}"] = gram(batch.fit_grads[layer.name].flatten(0, 1))
    return sums


def diagonal_sums(batch: BatchGradients, layers: Sequence[TrackedLayer]) -> Sums:
    sums = Sums(counts=_batch_counts(batch))
    for layer in layers:
        grads = sequence_grads(batch.fit_grads[layer.name], batch.inputs[layer.name])
        sums.tensors[f"D:{layer.name}"] = grads.square().sum(dim=0).double()
    return sums


def lambda_sums(batch: BatchGradients, layers: Sequence[TrackedLayer]) -> Sums:
    """Sums of the per-sequence gradients' squared coordinates in each layer's Kronecker eigenbasis (the batch
    rotated by `rotate_batch`)."""
    if batch.basis != "eigen":
        raise ValueError("lambda_sums needs a batch in the Kronecker eigenbasis (rotate_batch)")
    sums = Sums(counts=_batch_counts(batch))
    for layer in layers:
        rotated = sequence_grads(batch.fit_grads[layer.name], batch.inputs[layer.name])
        sums.tensors[f"L:{layer.name}"] = rotated.square().sum(dim=0).double()
    return sums


def gram(values: Any) -> Any:
    """The upper triangle of values^T values in float64 (values: rows x d), zeros below: the sums stay triangular
    and the eigendecomposition reads the upper triangle only, so the product is never mirrored. On the CPU,
    BLAS's symmetric rank-k update computes just that triangle, half a general product's work."""
    import torch

    if values.device.type != "cpu":
        wide = values.double()
        return torch.triu(wide.T @ wide)
    from scipy.linalg.blas import dsyrk

    rows = values.double().numpy()
    return torch.from_numpy(dsyrk(1.0, rows.T, trans=0))  # rows.T is Fortran-ordered: no copy
