"""Curvature factors of the tracked layers and the preconditioner they define, (G + lambda I)^-1 per layer.

G is the Gauss-Newton Hessian of the training objective (the mean over training sequences of each sequence's
summed token loss), block-diagonal over the tracked layers. Per layer, with DW_z = sum_t g_t a_t^T the gradient
of sequence z (shape out x in):

- identity: G = I, no curvature (influence is the gradient dot product);
- diagonal: diag(G) = mean_z DW_z ** 2 (elementwise);
- kfac: G ~ A (x) S with A = mean over tokens of a a^T and S = the sum over a sequence's tokens of g g^T,
  averaged over sequences (or over tokens, kronfluence's convention, `covariance="token"`);
- ekfac: the eigenbasis of A (x) S, Q_S (x) Q_A, with the eigenvalues refitted in it:
  Lambda = mean_z (Q_S^T DW_z Q_A) ** 2 (George et al. 2018; Grosse et al. 2023, section 2.2.3).

Damping: lambda = `damping` when given, else `damping_scale` times the mean eigenvalue of the layer's curvature.
Covariance products, every sum and every eigendecomposition are float64; per-sequence gradients and their
rotations run in the model's precision (float32), as kronfluence's do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError, DataError, UnknownNameError
from lmaudit.core.output import write_json_atomic
from lmaudit.influence.gradients import BatchGradients
from lmaudit.influence.modules import TrackedLayer
from lmaudit.influence.sums import Sums

STRATEGIES = ("identity", "diagonal", "kfac", "ekfac")
FISHERS = ("true", "empirical")
COVARIANCES = ("sequence", "token")
FACTORS_FILE, FACTORS_META = "factors.safetensors", "factors.json"
FACTORS_SCHEMA = "lmaudit.influence.factors/2"


@dataclass(frozen=True)
class FactorSettings:
    strategy: str = "ekfac"
    fisher: str = "true"  # labels sampled from the model ("true") or the data's own ("empirical")
    damping: float | None = None  # absolute; None: damping_scale x the layer's mean eigenvalue
    damping_scale: float = 0.1
    covariance: str = "sequence"  # how K-FAC's gradient factor is averaged: per sequence, or per token
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value, valid in (("strategy", self.strategy, STRATEGIES), ("fisher", self.fisher, FISHERS),
                                   ("covariance", self.covariance, COVARIANCES)):
            if value not in valid:
                raise UnknownNameError(f"influence {name}", value, list(valid))
        if self.damping is not None and self.damping < 0:
            raise ConfigError(f"damping must be >= 0, got {self.damping}")
        if self.damping_scale < 0:
            raise ConfigError(f"damping scale must be >= 0, got {self.damping_scale}")

    @property
    def stages(self) -> tuple[str, ...]:
        """The passes over the fitting data: the covariance and the eigenvalue refit need one each."""
        return {"identity": (), "diagonal": ("diagonal",), "kfac": ("covariance",),
                "ekfac": ("covariance", "lambda")}[self.strategy]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cast_bases(bases: dict[str, tuple[Any, Any]], dtype: Any) -> dict[str, tuple[Any, Any]]:
    """The bases in `dtype` (the gradients' precision, see gradients.gradient_dtype), a basis shared by several
    layers cast once; unchanged for None."""
    if dtype is None:
        return bases
    cast: dict[int, Any] = {}

    def one(tensor: Any) -> Any:
        return cast.setdefault(id(tensor), tensor.to(dtype))

    return {name: (one(grad_basis), one(input_basis)) for name, (grad_basis, input_basis) in bases.items()}


def rotate_batch(batch: BatchGradients, bases: dict[str, tuple[Any, Any]]) -> BatchGradients:
    """The batch in each layer's Kronecker eigenbasis: inputs a Q_A and output gradients g Q_S, so that a sequence's
    rotated gradient Q_S^T DW Q_A is (g Q_S)^T (a Q_A). Rotating the factors costs T (out^2 + in^2) per sequence
    and layer, rotating DW itself out in (out + in): four times more for a 128-token sequence of SmolLM2's MLP.
    An input shared by several layers (one group, one basis) is rotated once."""
    if batch.basis == "eigen":
        return batch
    inputs: dict[str, Any] = {}
    rotated_grads: dict[str, dict[str, Any]] = {"fit": {}, "data": {}}
    for name, head in batch.input_groups.items():
        grad_basis, input_basis = bases[name]
        values = batch.inputs[name]
        if head not in inputs:
            inputs[head] = values @ input_basis.to(values.dtype)
        inputs[name] = inputs[head]
        for kind, grads in (("fit", batch.fit_grads), ("data", batch.data_grads)):
            if grads is not None and name not in rotated_grads[kind]:
                rotated_grads[kind][name] = grads[name] @ grad_basis.to(values.dtype)
    fit = rotated_grads["fit"] if batch.fit_grads is not None else None
    if batch.fit_grads is not None and batch.fit_grads is batch.data_grads:
        data = fit
    else:
        data = rotated_grads["data"] if batch.data_grads is not None else None
    return BatchGradients(batch.lengths, inputs, fit, data, batch.input_groups, batch.data_loss, basis="eigen")


def eigendecompose(matrix: Any) -> tuple[Any, Any]:
    """(eigenvalues >= 0, eigenvectors) of a symmetric positive semi-definite float64 matrix given by its upper
    triangle (what lies below it is not read).

    numpy's eigh (LAPACK's divide and conquer through OpenBLAS) runs without the GIL and took 0.45 s per
    1536 x 1536 factor on one core of an AMD EPYC against torch's 0.55 s (0.97 s against 0.88 s on a Xeon core)."""
    import numpy as np
    import torch

    values, vectors = np.linalg.eigh(matrix.cpu().numpy(), UPLO="U")
    return torch.from_numpy(values).clamp_min(0.0), torch.from_numpy(vectors)


def eigendecompose_all(matrices: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Many eigendecompositions, each on one thread, as many at a time as torch has threads, largest first.

    A multi-threaded LAPACK eigh waits for every thread at each step: on a machine shared with other jobs, one
    descheduled thread stalls it (measured here: four 1536 x 1536 decompositions took 19-35 s on two threads
    and 3.8 s on one). Independent matrices on single-threaded calls lose nothing when the machine is idle."""
    import torch
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    order = sorted(matrices, key=lambda key: -matrices[key].shape[0])
    with threadpool_limits(1), ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = dict(zip(order, pool.map(eigendecompose, [matrices[key] for key in order])))
    return {key: results[key] for key in matrices}


@dataclass
class LayerCurvature:
    """One layer's preconditioner: (G_l + damping I)^-1 in the strategy's approximation."""

    layer: TrackedLayer
    strategy: str
    values: Any = None  # (out, in_dim) float64: diag(G) (diagonal), Lambda (ekfac); None for kfac
    grad_basis: Any = None  # (out, out) float64, Q_S
    input_basis: Any = None  # (in_dim, in_dim) float64, Q_A
    damping: float = 0.0
    grad_values: Any = None  # kfac: (out,) sigma and (in_dim,) alpha, the factors' eigenvalues; Lambda is their
    input_values: Any = None  # outer product, kept as its two vectors (a file of out + in values, not out x in)

    @property
    def has_basis(self) -> bool:
        return self.grad_basis is not None

    @property
    def eigenvalues(self) -> Any:
        """(out, in_dim) float64: diag(G) (diagonal), Lambda (kfac, ekfac); None for identity."""
        if self.grad_values is not None:
            import torch

            return torch.outer(self.grad_values, self.input_values)
        return self.values

    def scale(self, grads: Any) -> Any:
        """Divide by the curvature's eigenvalues plus damping: the preconditioner in the layer's own basis (the
        Kronecker eigenbasis for kfac and ekfac, so `grads` must be rotated there; the weights' for diagonal)."""
        if self.strategy == "identity":
            return grads
        return grads / (self.eigenvalues + self.damping).to(grads.dtype)

    def precondition(self, grads: Any) -> Any:
        """(G + damping I)^-1 applied to gradients of shape (..., out, in_dim), in their precision."""
        if not self.has_basis:
            return self.scale(grads)
        grad_basis, input_basis = self.grad_basis.to(grads.dtype), self.input_basis.to(grads.dtype)
        return grad_basis @ self.scale(grad_basis.T @ grads @ input_basis) @ input_basis.T


@dataclass
class Factors:
    """Fitted curvature of every tracked layer, with what it was fitted on (checked before scoring)."""

    settings: FactorSettings
    layers: list[TrackedLayer]
    curvature: dict[str, LayerCurvature]
    model_fingerprint: str
    sequences: int = 0
    tokens: int = 0
    input_groups: dict[str, str] = field(default_factory=dict)

    def precondition(self, name: str, grads: Any) -> Any:
        return self.curvature[name].precondition(grads)

    def bases(self, dtype: Any = None) -> dict[str, tuple[Any, Any]] | None:
        """(Q_S, Q_A) per layer for kfac and ekfac, in `dtype` when given (cast once here rather than for every
        batch the rotation reads); None for the strategies without an eigenbasis."""
        if not all(c.has_basis for c in self.curvature.values()):
            return None
        return cast_bases({name: (c.grad_basis, c.input_basis) for name, c in self.curvature.items()}, dtype)

    def dampings(self) -> dict[str, float]:
        return {name: c.damping for name, c in self.curvature.items()}

    def check_matches(self, model_fingerprint: str, layers: Sequence[TrackedLayer], where: str) -> None:
        """Refuse factors fitted on another model or on other layers, naming the difference."""
        if model_fingerprint != self.model_fingerprint:
            raise ConfigError(f"factors in {where} were fitted on another model (fingerprint "
                              f"{self.model_fingerprint}, this model is {model_fingerprint}); fit them again")
        mine = [layer.to_dict() for layer in self.layers]
        theirs = [layer.to_dict() for layer in layers]
        if mine != theirs:
            fitted = {d["name"] for d in mine}
            asked = {d["name"] for d in theirs}
            extra, missing = sorted(asked - fitted), sorted(fitted - asked)
            detail = "; ".join(part for part in (f"not fitted: {', '.join(extra[:4])}" if extra else "",
                                                 f"fitted but not asked for: {', '.join(missing[:4])}"
                                                 if missing else "") if part) or "shapes differ"
            raise ConfigError(f"factors in {where} were fitted on other modules ({detail}); use the same "
                              f"--modules or fit them again")

    # -- files ---------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors, saved_bases = {}, set()
        for name, curve in self.curvature.items():
            if curve.values is not None:
                tensors[f"eigenvalues:{name}"] = curve.values.contiguous()
            if curve.grad_basis is not None:
                tensors[f"grad_basis:{name}"] = curve.grad_basis.contiguous()
            if curve.grad_values is not None:
                tensors[f"grad_values:{name}"] = curve.grad_values.contiguous()
            head = self.input_groups.get(name, name)
            if curve.input_basis is not None and head not in saved_bases:
                tensors[f"input_basis:{head}"] = curve.input_basis.contiguous()
                if curve.input_values is not None:
                    tensors[f"input_values:{head}"] = curve.input_values.contiguous()
                saved_bases.add(head)
        tmp = folder / f".{FACTORS_FILE}.tmp"
        save_file(tensors, str(tmp))
        tmp.replace(folder / FACTORS_FILE)
        write_json_atomic(folder / FACTORS_META, {
            "schema": FACTORS_SCHEMA, "settings": self.settings.to_dict(), "model_fingerprint": self.model_fingerprint,
            "layers": [layer.to_dict() for layer in self.layers], "input_groups": self.input_groups,
            "dampings": self.dampings(), "sequences": self.sequences, "tokens": self.tokens})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Factors:
        from safetensors import safe_open

        folder = Path(folder)
        meta_path = folder / FACTORS_META
        if not meta_path.is_file():
            raise DataError(f"{folder} holds no fitted factors ({FACTORS_META} missing); run `lmaudit influence fit`")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{meta_path}: not valid JSON ({exc.msg})") from exc
        schema = meta.get("schema")
        if schema != FACTORS_SCHEMA:
            if str(schema).startswith(FACTORS_SCHEMA.split("/")[0]):
                raise DataError(f"{meta_path}: factors written by another version of lmaudit (schema {schema!r}, "
                                f"this one reads {FACTORS_SCHEMA!r}); fit them again")
            raise DataError(f"{meta_path}: not an lmaudit factors file (schema {schema!r})")
        settings = FactorSettings(**meta["settings"])
        layers = [TrackedLayer(**d) for d in meta["layers"]]
        tensors: dict[str, Any] = {}
        if (folder / FACTORS_FILE).exists():
            with safe_open(str(folder / FACTORS_FILE), framework="pt") as handle:
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        groups = meta.get("input_groups", {})
        curvature = {}
        for layer in layers:
            head = groups.get(layer.name, layer.name)
            curvature[layer.name] = LayerCurvature(
                layer, settings.strategy, tensors.get(f"eigenvalues:{layer.name}"),
                tensors.get(f"grad_basis:{layer.name}"), tensors.get(f"input_basis:{head}"),
                float(meta["dampings"][layer.name]), tensors.get(f"grad_values:{layer.name}"),
                tensors.get(f"input_values:{head}"))
        return cls(settings, layers, curvature, meta["model_fingerprint"], meta["sequences"], meta["tokens"], groups)


def _damping(settings: FactorSettings, eigenvalues: Any) -> float:
    if settings.damping is not None:
        return float(settings.damping)
    return float(settings.damping_scale * eigenvalues.mean())


def kronecker_bases(covariance: Sums, layers: Sequence[TrackedLayer], groups: dict[str, str],
                    settings: FactorSettings) -> dict[str, tuple[Any, Any, Any, Any]]:
    """Per layer (Q_S, sigma, Q_A, alpha): eigenvectors and eigenvalues of the averaged S and A. An input
    factor shared by several layers (the same tensor read by gate and up projections) is decomposed once."""
    tokens, sequences = covariance.counts["tokens"], covariance.counts["sequences"]
    if tokens == 0:
        raise DataError("no training tokens reached the covariance: the fitting data is empty")
    per = sequences if settings.covariance == "sequence" else tokens
    matrices = {f"A:{groups[layer.name]}": covariance.tensors[f"A:{groups[layer.name]}"] / tokens for layer in layers}
    matrices.update({f"S:{layer.name}": covariance.tensors[f"S:{layer.name}"] / per for layer in layers})
    eigen = eigendecompose_all(matrices)
    bases = {}
    for layer in layers:
        sigma, grad_basis = eigen[f"S:{layer.name}"]
        alpha, input_basis = eigen[f"A:{groups[layer.name]}"]
        bases[layer.name] = (grad_basis, sigma, input_basis, alpha)
    return bases


def build_factors(settings: FactorSettings, layers: Sequence[TrackedLayer], model_fingerprint: str, *,
                  groups: dict[str, str], diagonal: Sums | None = None,
                  bases: dict[str, tuple[Any, Any, Any, Any]] | None = None, lambdas: Sums | None = None,
                  counts: dict[str, int] | None = None) -> Factors:
    """The finished preconditioner from the stages' sums."""
    curvature = {}
    for layer in layers:
        name = layer.name
        if settings.strategy == "identity":
            curvature[name] = LayerCurvature(layer, "identity")
        elif settings.strategy == "diagonal":
            values = diagonal.tensors[f"D:{name}"] / diagonal.counts["sequences"]
            curvature[name] = LayerCurvature(layer, "diagonal", values, damping=_damping(settings, values))
        else:
            grad_basis, sigma, input_basis, alpha = bases[name]
            if settings.strategy == "kfac":
                damping = _damping(settings, sigma.mean() * alpha.mean())  # the mean of their outer product
                curvature[name] = LayerCurvature(layer, "kfac", None, grad_basis, input_basis, damping, sigma, alpha)
            else:
                values = lambdas.tensors[f"L:{name}"] / lambdas.counts["sequences"]
                curvature[name] = LayerCurvature(layer, "ekfac", values, grad_basis, input_basis,
                                                 _damping(settings, values))
    counts = counts or {}
    return Factors(settings, list(layers), curvature, model_fingerprint, counts.get("sequences", 0),
                   counts.get("tokens", 0), dict(groups))
