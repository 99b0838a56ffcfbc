"""Data and scale: a Ray run equals a local run, a killed run continues where it stopped with the same results, and
a stage that will not fit in memory is refused before it starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lmaudit.cli.main import main
from lmaudit.core.errors import ConfigError
from lmaudit.influence import (
    FactorSettings,
    InfluenceEstimator,
    encode_queries,
    select_layers,
)


def _fit_and_score(tiny, tiny_dir, sequences, queries, tmp_path, executor: str):
    layers = select_layers(tiny.module, ["layers.*.mlp.*", "layers.0.self_attn.v_proj"])
    estimator = InfluenceEstimator(tiny, layers, FactorSettings(strategy="ekfac", fisher="true", seed=5),
                                   batch_size=6, chunk_size=12, executor=executor, workers=2,
                                   model_spec=f"hf:{tiny_dir}", log=None)
    try:
        factors = estimator.fit(sequences, tmp_path / executor)
        encoded = encode_queries(tiny, queries)
        return factors, estimator.scores(factors, encoded, sequences, tmp_path / executor / "parts")
    finally:
        estimator.close()


@pytest.mark.slow
def test_a_ray_run_equals_a_local_run(tiny, tiny_dir, sequences, queries, tmp_path):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = _fit_and_score(tiny, tiny_dir, sequences[:48], queries, tmp_path, "ray")
    finally:
        ray.shutdown()
    local = _fit_and_score(tiny, tiny_dir, sequences[:48], queries, tmp_path, "local")
    for name, curve in local[0].curvature.items():
        other = on_ray[0].curvature[name]
        np.testing.assert_allclose(other.eigenvalues.numpy(), curve.eigenvalues.numpy(), rtol=1e-6, atol=1e-12)
        assert other.damping == pytest.approx(curve.damping, rel=1e-9)
    np.testing.assert_allclose(on_ray[1].per_layer, local[1].per_layer, rtol=1e-5,
                               atol=1e-6 * np.abs(local[1].per_layer).max())
    assert len(on_ray[1].sequence_ids) == 48  # four chunks: more than one per worker


def test_a_stage_that_will_not_fit_is_refused_with_what_it_needs(tiny, sequences, tmp_path, monkeypatch):
    from lmaudit.influence import memory

    lines = []
    layers = select_layers(tiny.module, ["layers.*"])
    estimator = InfluenceEstimator(tiny, layers, FactorSettings(strategy="ekfac"), log=lines.append)
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 64 << 10)
    with pytest.raises(ConfigError, match=r"fitting \(covariance\) will not fit in memory: it needs about .* KB "
                                          r"\(largest: activations .*\) and 64.0 KB is available; lower --batch-size"):
        estimator.fit(sequences, tmp_path / "f")
    assert lines and lines[0].startswith("memory for fitting (covariance): factors ")
    assert not (tmp_path / "f" / "covariance.safetensors").exists()  # refused before any work


def _argv(tiny_dir, corpus, queries_file, out) -> list[str]:
    return [sys.executable, "-m", "lmaudit", "influence", "scores", "--model", f"hf:{tiny_dir}", "--modules",
            "layers.*", "--corpus", str(corpus), "--queries", str(queries_file), "--seq-len", "16",
            "--chunk-size", "8", "--batch-size", "4", "--checkpoint-seconds", "0", "--top-k", "2",
            "--output-dir", str(out), "--quiet", "--private-cache"]


@pytest.mark.slow
def test_a_killed_run_continues_where_it_stopped(tiny_dir, tiny_corpus, queries_file, tmp_path):
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    small = tmp_path / "corpus.jsonl"  # four abstracts: a few hundred sequences in chunks of 8
    small.write_text("".join(tiny_corpus.read_text(encoding="utf-8").splitlines(keepends=True)[:4]))
    tiny_corpus = small
    reference, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(_argv(tiny_dir, tiny_corpus, queries_file, reference)[3:]) == 0  # uninterrupted, in this process
    process = subprocess.Popen(_argv(tiny_dir, tiny_corpus, queries_file, killed), env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    checkpoint = killed / "factors" / "lambda.safetensors"
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists() and not (killed / "results.json").exists(), "the run was not killed mid-way"
    covariance_stamp = (killed / "factors" / "covariance.safetensors").stat().st_mtime_ns
    done = subprocess.run(_argv(tiny_dir, tiny_corpus, queries_file, killed), check=False, env=environment,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (killed / "factors" / "covariance.safetensors").stat().st_mtime_ns == covariance_stamp  # not redone
    whole = json.loads((reference / "results.json").read_text())
    resumed = json.loads((killed / "results.json").read_text())
    assert [e["sequence_id"] for q in resumed["queries"] for e in q["top"]] == \
        [e["sequence_id"] for q in whole["queries"] for e in q["top"]]
    np.testing.assert_allclose([e["score"] for q in resumed["queries"] for e in q["top"]],
                               [e["score"] for q in whole["queries"] for e in q["top"]], rtol=1e-6)
    manifest = json.loads((killed / "manifest.json").read_text())
    assert len(manifest["invocations"]) == 2 and manifest["invocations"][-1]["finished"]


def test_covariance_checkpoints_are_packed_triangles_that_load_back_exactly(tmp_path):
    import torch
    from safetensors import safe_open

    from lmaudit.influence.sums import Sums, gram

    rows = torch.randn(50, 7, dtype=torch.float64)
    sums = Sums({"A:x": gram(rows), "S:y": gram(rows[:, :3])}, {"sequences": 2, "tokens": 50}, upper=True)
    sums.save(tmp_path / "covariance.safetensors", next_chunk=1)
    with safe_open(str(tmp_path / "covariance.safetensors"), framework="pt") as handle:
        assert {key: tuple(handle.get_tensor(key).shape) for key in handle.keys()} == {"A:x": (28,), "S:y": (6,)}
    loaded, meta = Sums.load(tmp_path / "covariance.safetensors")
    assert loaded.upper and meta == {"next_chunk": 1} and loaded.counts == sums.counts
    for key, value in sums.tensors.items():
        assert torch.equal(loaded.tensors[key], value)
    np.testing.assert_allclose(torch.triu(loaded.tensors["A:x"]), torch.triu(rows.T @ rows), rtol=1e-12)


@pytest.mark.parametrize("strategy", ["kfac", "ekfac"])
def test_saved_factors_load_back_to_the_same_preconditioner(tiny, sequences, strategy, tmp_path):
    import torch

    from lmaudit.core.errors import DataError
    from lmaudit.influence.factors import FACTORS_FILE, FACTORS_META, FACTORS_SCHEMA, Factors

    layers = select_layers(tiny.module, ["layers.0.mlp.*"])
    estimator = InfluenceEstimator(tiny, layers, FactorSettings(strategy=strategy, fisher="empirical"), log=None)
    try:
        fitted = estimator.fit(sequences[:12], tmp_path)
    finally:
        estimator.close()
    loaded = Factors.load(tmp_path)
    for layer in layers:
        probe = torch.randn(3, layer.out_features, layer.in_dim)
        mine, theirs = fitted.curvature[layer.name], loaded.curvature[layer.name]
        assert torch.equal(mine.eigenvalues, theirs.eigenvalues) and mine.damping == theirs.damping
        assert torch.equal(fitted.precondition(layer.name, probe), loaded.precondition(layer.name, probe))
    if strategy == "kfac":  # Lambda as sigma and alpha: the file holds no (out x in) eigenvalue matrix
        from safetensors import safe_open

        with safe_open(str(tmp_path / FACTORS_FILE), framework="pt") as handle:
            assert not [key for key in handle.keys() if key.startswith("eigenvalues:")]
    # factors of an older file layout are refused with what to do, not misread
    meta_path = tmp_path / FACTORS_META
    meta_path.write_text(meta_path.read_text().replace(FACTORS_SCHEMA, "lmaudit.influence.factors/1"))
    with pytest.raises(DataError, match="another version of lmaudit .* fit them again"):
        Factors.load(tmp_path)
