"""The scaling trainer continuing an existing model: top layers only, resumable, saved for `hf:<folder>`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from lmaudit.core.errors import ConfigError
from lmaudit.models import load_model
from lmaudit.scaling import ModelShape, RunSpec, TokenData, train_run
from lmaudit.scaling.train import evaluate, heldout_windows

SEQ = 32


@pytest.fixture(scope="module")
def tokens(tiny_model, arxiv):
    """Real text in the tiny model's own tokens: a training stream and a held-out one."""
    from lmaudit.scaling import load_corpus

    corpus = load_corpus(arxiv, heldout_fraction=0.05, text_field="abstract")
    sep = tiny_model.tokenizer.eos_token_id

    def stream(docs, count):
        ids = []
        for doc in docs[:count]:
            ids += [sep] + tiny_model.encode(doc.text, add_special_tokens=False)
        return np.asarray(ids, dtype=np.int64)

    return TokenData(stream(corpus.train, 6), stream(corpus.heldout, 4), None, len(tiny_model.tokenizer))


def spec_for(model, **changes) -> RunSpec:
    spec = RunSpec("ft", ModelShape.of(model.module.config), tokens=48 * 4 * SEQ, lr=0.01, batch_size=4, seq_len=SEQ,
                   warmup_fraction=0.2, weight_decay=0.0, start_from=model.fingerprint(), trainable_layers=1)
    return replace(spec, **changes)


def _weights(module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def test_only_the_top_layer_and_final_norm_move_and_the_start_stays_as_it_was(tiny_model, tokens, tmp_path):
    before = _weights(tiny_model.module)
    record = train_run(spec_for(tiny_model), tokens, tmp_path / "ft", heldout_tokens=256, progress=False, threads=1,
                       start=tiny_model)
    assert record is not None and record.config["trainable_params"] > 0
    assert all(torch.equal(p, before[n]) for n, p in tiny_model.module.named_parameters())  # a copy was trained
    tuned = load_model(f"hf:{tmp_path / 'ft'}")
    after = _weights(tuned.module)
    assert after.keys() == before.keys()
    moved = {name for name in before if not torch.equal(before[name], after[name])}
    top = {name for name in before if name.startswith("model.layers.1.")}
    assert moved == top | {"model.norm.weight"}
    assert tuned.encode("leakage test") == tiny_model.encode("leakage test")  # the model's own tokenizer was saved
    seen = heldout_windows(tokens.train, SEQ, len(tokens.train))  # every training window
    assert evaluate(tuned.module, tokens.train, seen, SEQ) < evaluate(tiny_model.module, tokens.train, seen, SEQ) - 0.05


def test_a_paused_fine_tune_resumes_to_the_same_weights(tiny_model, tokens, tmp_path):
    spec = spec_for(tiny_model)
    straight = train_run(spec, tokens, tmp_path / "straight", heldout_tokens=256, progress=False, threads=1,
                         start=tiny_model)
    assert train_run(spec, tokens, tmp_path / "resumed", heldout_tokens=256, progress=False, threads=1,
                     stop_after_steps=9, start=tiny_model) is None
    state = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert set(state["model"]) == {n for n, _ in tiny_model.module.named_parameters()
                                   if n.startswith("model.layers.1.") or n == "model.norm.weight"}
    resumed = train_run(spec, tokens, tmp_path / "resumed", heldout_tokens=256, progress=False, threads=1,
                        start=tiny_model)
    assert resumed.loss == straight.loss
    a, b = _weights(load_model(f"hf:{tmp_path / 'straight'}").module), _weights(load_model(f"hf:{tmp_path / 'resumed'}").module)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert train_run(spec, tokens, tmp_path / "resumed", progress=False, start=tiny_model) == resumed  # reused


def test_every_weight_trains_without_trainable_layers(tiny_model, tokens, tmp_path):
    train_run(spec_for(tiny_model, trainable_layers=None), tokens, tmp_path / "all", heldout_tokens=256,
              progress=False, threads=1, start=tiny_model)
    before, after = _weights(tiny_model.module), _weights(load_model(f"hf:{tmp_path / 'all'}").module)
    assert all(not torch.equal(before[n], after[n]) for n in before)


def test_a_fine_tune_refuses_the_wrong_start_and_bad_shapes(tiny_model, tokens, tmp_path):
    with pytest.raises(ConfigError, match="continues model"):
        train_run(spec_for(tiny_model, start_from="hf:other"), tokens, tmp_path / "a", progress=False,
                  start=tiny_model)
    with pytest.raises(ConfigError, match="exactly when"):
        train_run(spec_for(tiny_model), tokens, tmp_path / "b", progress=False)
    with pytest.raises(ConfigError, match="trainable_layers must be in 1..2"):
        train_run(spec_for(tiny_model, trainable_layers=3), tokens, tmp_path / "c", progress=False, start=tiny_model)
    with pytest.raises(ConfigError, match="longer than the model's context"):
        train_run(spec_for(tiny_model, seq_len=tiny_model.max_length + 1), tokens, tmp_path / "d", progress=False,
                  start=tiny_model)


def test_a_from_scratch_spec_keeps_its_old_record_format():
    spec = RunSpec("ladder", ModelShape(16, 2, 4, 48), tokens=1000, lr=0.01)
    assert "start_from" not in spec.to_dict() and "trainable_layers" not in spec.to_dict()
