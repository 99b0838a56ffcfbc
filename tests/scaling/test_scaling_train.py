"""The trainer: parameter counting, the schedule, determinism across a checkpoint, reuse of finished runs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lmaudit.core.errors import ConfigError
from lmaudit.scaling.corpus import load_corpus
from lmaudit.scaling.ladder import prepare_data
from lmaudit.scaling.train import CHECKPOINT, ModelShape, RunSpec, count_non_embedding, llama_config, train_run


@pytest.fixture(scope="module")
def token_data(tmp_path_factory, small_corpus):
    return prepare_data(load_corpus(small_corpus, heldout_fraction=0.15), 512,
                        tmp_path_factory.mktemp("data"))


SPEC = RunSpec("t", ModelShape(d_model=16, n_layers=2, n_heads=4, d_ff=48), tokens=24 * 4 * 32, lr=0.01,
               batch_size=4, seq_len=32)


@pytest.mark.parametrize("shape", [ModelShape(16, 2, 4, 48), ModelShape(104, 3, 13, 280), ModelShape(48, 5, 3, 128)])
def test_non_embedding_formula_matches_the_model(shape):
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM(llama_config(shape, vocab_size=300, seq_len=64))
    assert count_non_embedding(model) == shape.non_embedding_params()
    assert sum(p.numel() for p in model.parameters()) == shape.non_embedding_params() + 2 * 300 * shape.d_model


def test_schedule_warms_up_then_decays_to_the_floor():
    spec = replace(SPEC, tokens=100 * 4 * 32, warmup_fraction=0.1)
    rates = [spec.lr_at(step) for step in range(spec.steps)]
    assert rates[0] == pytest.approx(spec.lr / 10)
    assert rates[9] == pytest.approx(spec.lr)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert rates[-1] == pytest.approx(spec.lr * spec.final_lr_fraction)


def test_resumed_run_equals_an_uninterrupted_one(token_data, tmp_path):
    import torch

    callers = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        straight = train_run(SPEC, token_data, tmp_path / "straight", heldout_tokens=1024, progress=False, threads=1)
        assert torch.get_num_threads() == 2  # the run's thread count does not outlive it
    finally:
        torch.set_num_threads(callers)
    assert train_run(SPEC, token_data, tmp_path / "resumed", heldout_tokens=1024, progress=False, threads=1,
                     stop_after_steps=10) is None
    assert (tmp_path / "resumed" / CHECKPOINT).exists()
    resumed = train_run(SPEC, token_data, tmp_path / "resumed", heldout_tokens=1024, progress=False, threads=1)
    assert resumed.loss == straight.loss
    assert [p.heldout_loss for p in resumed.loss_curve] == [p.heldout_loss for p in straight.loss_curve]
    assert not (tmp_path / "resumed" / CHECKPOINT).exists()
    assert straight.loss < straight.loss_curve[0].heldout_loss  # it learned something
    assert straight.tokens == SPEC.steps * SPEC.batch_size * SPEC.seq_len


def test_finished_run_is_reused_and_other_settings_are_refused(token_data, tmp_path):
    first = train_run(SPEC, token_data, tmp_path / "run", heldout_tokens=1024, progress=False, threads=1)
    again = train_run(SPEC, token_data, tmp_path / "run", heldout_tokens=1024, progress=False, threads=1)
    assert again == first
    other = replace(SPEC, lr=0.02)
    train_run(other, token_data, tmp_path / "paused", heldout_tokens=1024, progress=False, threads=1,
              stop_after_steps=3)
    with pytest.raises(ConfigError, match="other settings"):
        train_run(SPEC, token_data, tmp_path / "paused", heldout_tokens=1024, progress=False, threads=1)
