"""Per-layer scores sum to the total, per-token scores to each sequence's score, the total equals an independent
computation, and query batching's low-rank error is what it reports."""

from __future__ import annotations

import numpy as np
import pytest

from lmaudit.influence import (
    FactorSettings,
    InfluenceEstimator,
    encode_queries,
    select_layers,
)
from lmaudit.influence.reference import per_sequence_gradients


@pytest.fixture(scope="module")
def fitted(tiny64, sequences, queries, tmp_path_factory):
    layers = select_layers(tiny64.module, ["layers.*.mlp.*", "layers.1.self_attn.*"])
    estimator = InfluenceEstimator(tiny64, layers, FactorSettings(strategy="ekfac"), batch_size=7, chunk_size=20,
                                   log=None)
    folder = tmp_path_factory.mktemp("fitted")
    factors = estimator.fit(sequences[:60], folder)
    encoded = encode_queries(tiny64, queries)
    return estimator, factors, encoded, estimator.scores(factors, encoded, sequences[:60], folder / "parts")


def test_layer_scores_sum_to_a_total_that_an_independent_computation_gives(tiny64, sequences, fitted):
    import torch

    estimator, factors, encoded, result = fitted
    train = per_sequence_gradients(tiny64, estimator.layers, [s.tokens for s in sequences[:60]])
    query = per_sequence_gradients(tiny64, estimator.layers, [q.tokens for q in encoded],
                                   targets_from=[q.completion_start for q in encoded])
    for index, layer in enumerate(estimator.layers):
        preconditioned = factors.precondition(layer.name, torch.stack([q[index] for q in query])).numpy()
        expected = np.einsum("qoi,soi->sq", preconditioned, np.stack([g[index].numpy() for g in train]))
        np.testing.assert_allclose(result.per_layer[:, :, index], expected, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(result.total, result.per_layer.sum(axis=-1), rtol=0, atol=0)
    assert np.abs(result.per_layer).max() > 0


def test_token_scores_sum_to_the_sequence_score(sequences, fitted):
    estimator, _, _, result = fitted
    chosen = sequences[:60:7]
    per_token = estimator.token_scores(result.query_gradients, chosen)
    for sequence, values in zip(chosen, per_token):
        index = result.sequence_ids.index(sequence.sequence_id)
        assert values.shape == (len(result.query_ids), len(sequence.tokens))
        np.testing.assert_allclose(values.sum(axis=1), result.total[index], rtol=1e-9, atol=1e-12)
        assert np.abs(values).max() > 0


def test_low_rank_query_batching_reports_its_error_and_is_exact_at_full_rank(sequences, fitted, tmp_path):
    estimator, factors, encoded, exact = fitted
    full_rank = max(min(layer.out_features, layer.in_dim) for layer in estimator.layers)
    whole = estimator.scores(factors, encoded, sequences[:60], tmp_path / "full", rank=full_rank)
    np.testing.assert_allclose(whole.per_layer, exact.per_layer, rtol=1e-7, atol=1e-10 * np.abs(exact.total).max())
    assert max(e for q in whole.low_rank_errors.values() for e in q.values()) < 1e-10
    low = estimator.scores(factors, encoded, sequences[:60], tmp_path / "low", rank=2)
    errors = np.array([e for q in low.low_rank_errors.values() for e in q.values()])
    assert set(low.low_rank_errors) == {q.query.query_id for q in encoded}
    assert ((errors > 0.01) & (errors < 1)).all()  # rank 2 of 8-16 dimensions loses something, never everything
    assert not np.allclose(low.total, exact.total)
    assert np.corrcoef(low.total.flatten(), exact.total.flatten())[0, 1] > 0.5


@pytest.mark.parametrize("rank", [None, 3])
def test_scoring_in_the_eigenbasis_equals_scoring_in_the_weights_basis(sequences, fitted, rank):
    from lmaudit.influence.engine import Worker
    from lmaudit.influence.scoring import layer_scores, token_scores

    estimator, factors, encoded, _ = fitted
    worker = Worker(estimator.model, estimator.layers, factors.settings, 7)
    batches = worker.gradients(sequences[:20], fit=False, data=True)
    weights = estimator.query_gradients(factors, encoded, rank, eigenbasis=False)
    eigen = estimator.query_gradients(factors, encoded, rank, eigenbasis=True)
    assert weights.bases is None and eigen.bases is not None
    for _, batch in batches:
        expected = layer_scores(weights, batch, estimator.layers).numpy()
        np.testing.assert_allclose(layer_scores(eigen, batch, estimator.layers).numpy(), expected, rtol=1e-8,
                                   atol=1e-10 * np.abs(expected).max())
        per_token = token_scores(eigen, batch, estimator.layers).numpy()
        np.testing.assert_allclose(per_token, token_scores(weights, batch, estimator.layers).numpy(), rtol=1e-8,
                                   atol=1e-10 * np.abs(per_token).max())
    if rank is not None:  # the error is basis-free: the rotation is orthogonal
        for query, layers in weights.errors.items():
            for name, error in layers.items():
                assert eigen.errors[query][name] == pytest.approx(error, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("fisher", ["true", "empirical"])
def test_fitting_and_scoring_the_same_sequences_runs_the_model_once(tiny, sequences, queries, tmp_path, fisher):
    layers = select_layers(tiny.module, ["layers.*.mlp.*"])
    estimator = InfluenceEstimator(tiny, layers, FactorSettings(strategy="ekfac", fisher=fisher), chunk_size=16,
                                   log=None)
    factors = estimator.fit(sequences[:48], tmp_path, keep_for_scores=True)
    result = estimator.scores(factors, encode_queries(tiny, queries), sequences[:48], tmp_path / "parts")
    assert estimator.model_passes == 3  # three chunks, one forward and backward each: the refit and scores replay
    assert estimator.basis == "eigen" and result.per_layer.shape == (48, len(queries), len(layers))
    again = InfluenceEstimator(tiny, layers, FactorSettings(strategy="ekfac", fisher=fisher), chunk_size=16,
                               cache_fraction=0.0, log=None)
    refitted = again.fit(sequences[:48], tmp_path / "again", keep_for_scores=True)
    rescored = again.scores(refitted, encode_queries(tiny, queries), sequences[:48], tmp_path / "again" / "parts")
    assert again.model_passes == 9  # no replay: covariance, refit and scores each run the model
    np.testing.assert_allclose(rescored.per_layer, result.per_layer, rtol=1e-5,
                               atol=1e-6 * np.abs(result.per_layer).max())


def test_saved_parts_of_other_queries_are_not_reused(sequences, fitted, tmp_path):
    estimator, factors, encoded, whole = fitted
    first = estimator.scores(factors, encoded[:2], sequences[:60], tmp_path)
    assert first.per_layer.shape[1] == 2 and len(list(tmp_path.glob("part-*.npy"))) == 3
    again = estimator.scores(factors, encoded, sequences[:60], tmp_path)
    np.testing.assert_allclose(again.per_layer, whole.per_layer, rtol=1e-9)
