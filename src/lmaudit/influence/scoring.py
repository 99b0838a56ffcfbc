"""Query gradients, their preconditioning and low-rank factorisation, and the scores of training batches.

For a query q with measurement f = log p(completion | prompt) and a training sequence z,

    I(z) = -grad f^T (G + lambda I)^-1 grad L(z) = sum over layers l of <P_l(q), DW_l(z)>,

with P_l(q) = (G_l + lambda_l I)^-1 grad_l(-f) the preconditioned query gradient (the gradient of the completion's
negative log-likelihood) and DW_l(z) = sum_t g_t a_t^T the training gradient. Both decompositions are exact by
construction: the per-layer terms sum to I(z), and since <P, g_t a_t^T> = g_t^T P a_t, so do the per-token terms
sum_l g_t^T P_l a_t over the sequence's positions.

Kronecker strategies can score in the layers' eigenbasis instead: with P = Q_S R Q_A^T and R the scaled rotated
query gradient, <P, DW> = <R, (g Q_S)^T (a Q_A)>, so neither P nor DW is ever rotated back or forth as a
matrix; the query's rotation (g_q Q_S, a_q Q_A) costs a few query tokens, the training batch's one product per
factor. The estimator picks the cheaper basis (always the eigenbasis when the eigenvalue refit already rotated
the cached training gradients).

Query batching: with `rank` r, each P_l(q) (or R_l(q)) is replaced by its best rank-r approximation U S V^T (randomised SVD),
and a training batch is scored against all queries at once through (g U) and (a V), never forming DW. The
relative Frobenius error ||P - U S V^T|| / ||P|| of every query and layer is kept and reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from lmaudit.core.errors import ConfigError
from lmaudit.influence.data import EncodedQuery
from lmaudit.influence.factors import Factors, rotate_batch
from lmaudit.influence.gradients import (
    BatchGradients,
    batch_gradients,
    gradient_dtype,
    length_batches,
    sequence_grads,
)
from lmaudit.influence.modules import TrackedLayer


@dataclass
class QueryGradients:
    """Preconditioned query gradients of every tracked layer, whole or as low-rank factors."""

    query_ids: list[str]
    full: dict[str, Any] | None = None  # layer -> (queries, out, in_dim)
    left: dict[str, Any] | None = None  # layer -> (out, queries * rank), singular values folded in
    right: dict[str, Any] | None = None  # layer -> (in_dim, queries * rank)
    rank: int | None = None
    errors: dict[str, dict[str, float]] = field(default_factory=dict)  # query -> layer -> relative error
    measurements: list[float] = field(default_factory=list)  # log p(completion | prompt), from the same pass
    bases: dict[str, tuple[Any, Any]] | None = None  # set: the gradients are in the Kronecker eigenbasis

    @property
    def count(self) -> int:
        return len(self.query_ids)


def query_gradients(model: Any, layers: Sequence[TrackedLayer], queries: Sequence[EncodedQuery],
                    factors: Factors, *, batch_size: int = 8, rank: int | None = None, seed: int = 0,
                    eigenbasis: bool = False, progress: bool = False) -> QueryGradients:
    """Gradients of each query's completion NLL, preconditioned (and compressed when `rank` is given); with
    `eigenbasis`, kept in the Kronecker eigenbasis (training batches must then be rotated too)."""
    import torch

    if rank is not None and rank < 1:
        raise ConfigError(f"--query-rank must be at least 1, got {rank}")
    bases = factors.bases(gradient_dtype(model)) if eigenbasis else None
    if eigenbasis and bases is None:
        raise ConfigError(f"strategy {factors.settings.strategy} has no eigenbasis to score in")
    count = len(queries)
    full: dict[str, list[Any]] = {layer.name: [None] * count for layer in layers}
    left: dict[str, list[Any]] = {layer.name: [None] * count for layer in layers}
    right: dict[str, list[Any]] = {layer.name: [None] * count for layer in layers}
    errors: dict[str, dict[str, float]] = {q.query.query_id: {} for q in queries} if rank is not None else {}
    measurements: list[float] = [0.0] * count
    for positions in tqdm(length_batches([len(q.tokens) for q in queries], batch_size), desc="query gradients",
                          unit="batch", disable=not progress):
        chunk = [queries[i] for i in positions]
        batch = batch_gradients(model, layers, [q.tokens for q in chunk],
                                targets_from=[q.completion_start for q in chunk], fit=None, data=True)
        for position, loss in zip(positions, batch.data_loss):
            measurements[position] = -float(loss)
        if bases is not None:
            batch = rotate_batch(batch, bases)
        for layer in layers:
            grads = sequence_grads(batch.data_grads[layer.name], batch.inputs[layer.name])
            if bases is not None:
                preconditioned = factors.curvature[layer.name].scale(grads)
            else:
                preconditioned = factors.precondition(layer.name, grads)
            for position, query, matrix in zip(positions, chunk, preconditioned):
                if rank is None:
                    full[layer.name][position] = matrix
                    continue
                u, s, v, error = _low_rank(matrix, rank, seed)
                left[layer.name][position], right[layer.name][position] = u * s, v
                errors[query.query.query_id][layer.name] = error
    ids = [q.query.query_id for q in queries]
    if rank is None:
        return QueryGradients(ids, full={k: torch.stack(v) for k, v in full.items()}, measurements=measurements,
                              bases=bases)
    return QueryGradients(ids, left={k: torch.cat(v, dim=1) for k, v in left.items()},
                          right={k: torch.cat(v, dim=1) for k, v in right.items()}, rank=rank, errors=errors,
                          measurements=measurements, bases=bases)


def in_basis(queries: QueryGradients, batch: BatchGradients) -> BatchGradients:
    """The training batch in the basis the query gradients are in."""
    if queries.bases is None:
        if batch.basis != "original":
            raise ValueError("query gradients in the weights' basis, training batch in the eigenbasis")
        return batch
    return rotate_batch(batch, queries.bases)


def _low_rank(matrix: Any, rank: int, seed: int) -> tuple[Any, Any, Any, float]:
    """Rank-r factors (U (out, r), S (r,), V (in, r)) of one preconditioned gradient and their relative error."""
    import torch

    r = min(rank, *matrix.shape)
    if r == min(matrix.shape):  # full rank asked: exact
        u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
        v = vh.T
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            u, s, v = torch.svd_lowrank(matrix, q=min(r + 10, min(matrix.shape)), niter=4)
        u, s, v = u[:, :r], s[:r], v[:, :r]
    norm = float(matrix.norm())
    error = float((matrix - (u * s) @ v.T).norm()) / norm if norm > 0 else 0.0
    if r < rank:  # pad so every query has `rank` columns (zeros add nothing)
        pad = rank - r
        u = torch.cat([u, u.new_zeros(u.shape[0], pad)], dim=1)
        v = torch.cat([v, v.new_zeros(v.shape[0], pad)], dim=1)
        s = torch.cat([s, s.new_zeros(pad)])
    return u, s, v, error


def layer_scores(queries: QueryGradients, batch: BatchGradients, layers: Sequence[TrackedLayer]) -> Any:
    """Influence of each sequence of the batch on each query, per layer: (batch, queries, layers) float64."""
    import torch

    batch = in_basis(queries, batch)
    columns = []
    for layer in layers:
        grads, inputs = batch.data_grads[layer.name], batch.inputs[layer.name]
        if queries.full is not None:
            per_sequence = sequence_grads(grads, inputs).flatten(1)
            columns.append(per_sequence @ queries.full[layer.name].to(grads.dtype).flatten(1).T)
        else:
            products = (grads @ queries.left[layer.name].to(grads.dtype)) * (inputs @ queries.right[layer.name]
                                                                            .to(grads.dtype))
            columns.append(products.sum(dim=1).view(len(batch.lengths), queries.count, queries.rank).sum(-1))
    return torch.stack(columns, dim=-1).double()


def token_scores(queries: QueryGradients, batch: BatchGradients, layers: Sequence[TrackedLayer]) -> Any:
    """Influence per position, summed over layers: (batch, queries, positions) float64; rows sum to the scores."""
    import torch

    batch = in_basis(queries, batch)
    total = None
    for layer in layers:
        grads, inputs = batch.data_grads[layer.name], batch.inputs[layer.name]
        if queries.full is not None:
            preconditioned = queries.full[layer.name].to(grads.dtype)
            part = torch.stack([((grads @ p) * inputs).sum(-1) for p in preconditioned], dim=1)
        else:
            products = (grads @ queries.left[layer.name].to(grads.dtype)) * (inputs @ queries.right[layer.name]
                                                                            .to(grads.dtype))
            part = products.view(*products.shape[:2], queries.count, queries.rank).sum(-1).transpose(1, 2)
        total = part.double() if total is None else total + part.double()
    return total
