"""Which layers are tracked: name patterns, tied output heads left alone unless asked, GPT-2's Conv1D layers in the
same (out, in) layout as nn.Linear, and gradients through the hooks equal to plain autograd's."""

from __future__ import annotations

import numpy as np
import pytest

from lmaudit.core.errors import ConfigError
from lmaudit.influence import select_layers
from lmaudit.influence.gradients import batch_gradients, sequence_grads
from lmaudit.influence.reference import char_tokenizer, per_sequence_gradients


def test_patterns_match_full_names_or_dotted_suffixes(tiny):
    names = [layer.name for layer in select_layers(tiny.module, ["layers.*.mlp.*"])]
    assert names == [f"model.layers.{i}.mlp.{p}" for i in (0, 1) for p in ("gate_proj", "up_proj", "down_proj")]
    assert [layer.name for layer in select_layers(tiny.module, ["layers.1.self_attn.q_proj, "])] == \
        ["model.layers.1.self_attn.q_proj"]
    with pytest.raises(ConfigError, match=r"match no linear layer.*model\.layers\.\{0\.\.1\}\.self_attn\.q_proj"):
        select_layers(tiny.module, ["transformer.h.*"])


def _tiny_hf(folder, kind: str):
    """A 2-block model of another family, saved with the character tokenizer so `hf:` loads it."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if kind == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=16, n_positions=32, n_embd=8, n_layer=2, n_head=1,
                                           bos_token_id=0, eos_token_id=0))
    else:
        model = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                                             num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=32,
                                             tie_word_embeddings=True, bos_token_id=0, eos_token_id=0,
                                             pad_token_id=0))
    model.save_pretrained(folder)
    char_tokenizer().save_pretrained(folder)
    return folder


def test_a_tied_output_head_is_left_alone_unless_asked(tmp_path):
    from lmaudit.models import load_model

    model = load_model(f"hf:{_tiny_hf(tmp_path / 'tied', 'llama')}")
    with pytest.raises(ConfigError, match="tied to the input embedding; add --include-tied"):
        select_layers(model.module, ["lm_head"])
    assert [layer.name for layer in select_layers(model.module, ["lm_head"], include_tied=True)] == ["lm_head"]
    assert "lm_head" not in [layer.name for layer in select_layers(model.module, ["*"])]


def test_conv1d_layers_and_biases_give_plain_autograd_gradients(tmp_path):
    from lmaudit.models import load_model

    model = load_model(f"hf:{_tiny_hf(tmp_path / 'gpt2', 'gpt2')}", dtype="float64")
    layers = select_layers(model.module, ["h.*.attn.c_attn", "h.*.mlp.*"])
    assert {layer.kind for layer in layers} == {"conv1d"} and all(layer.bias for layer in layers)
    assert layers[0].out_features == 24 and layers[0].in_dim == 9  # (3 x 8 outputs, 8 inputs + bias)
    rows = [(0, 3, 5, 7, 1, 2), (0, 4, 4, 9)]
    batch = batch_gradients(model, layers, rows, fit=None, data=True)
    reference = per_sequence_gradients(model, layers, rows)
    for index, layer in enumerate(layers):
        ours = sequence_grads(batch.data_grads[layer.name], batch.inputs[layer.name]).numpy()
        for row in range(len(rows)):
            np.testing.assert_allclose(ours[row], reference[row][index].numpy(), rtol=1e-10, atol=1e-13)
    import torch

    for row, tokens in enumerate(rows):
        with torch.no_grad():
            logprobs = torch.log_softmax(model.forward(torch.tensor([tokens]))[0, :-1], dim=-1)
        nll = -float(logprobs[torch.arange(len(tokens) - 1), torch.tensor(tokens[1:])].sum())
        assert float(batch.data_loss[row]) == pytest.approx(nll, rel=1e-10)


def test_the_gate_and_up_projections_share_one_input_factor(tiny):
    layers = select_layers(tiny.module, ["layers.0.mlp.*"])
    batch = batch_gradients(tiny, layers, [(0, 1, 2, 3)], fit=None, data=True)
    groups = batch.input_groups
    assert groups["model.layers.0.mlp.up_proj"] == "model.layers.0.mlp.gate_proj"
    assert groups["model.layers.0.mlp.down_proj"] == "model.layers.0.mlp.down_proj"


def test_a_tracked_tied_head_gets_its_own_gradient(tmp_path):
    """A tracked output head runs once over all positions, in the graph (not one sequence at a time): its gradient
    is sum_t (softmax_t - onehot_t) h_t^T over its own use (the tied embedding's use is another layer's), and the
    other layers' gradients are plain autograd's."""
    import torch

    from lmaudit.models import load_model

    model = load_model(f"hf:{_tiny_hf(tmp_path / 'tied', 'llama')}", dtype="float64")
    layers = select_layers(model.module, ["lm_head", "layers.1.mlp.down_proj"], include_tied=True)
    rows = [(0, 3, 5, 7, 1, 2), (0, 4, 4, 9)]
    batch = batch_gradients(model, layers, rows, fit=None, data=True)
    head, down = (sequence_grads(batch.data_grads[name], batch.inputs[name]).numpy()
                  for name in ("lm_head", "model.layers.1.mlp.down_proj"))
    reference = per_sequence_gradients(model, [layer for layer in layers if layer.name != "lm_head"], rows)
    for row, tokens in enumerate(rows):
        np.testing.assert_allclose(down[row], reference[row][0].numpy(), rtol=1e-10, atol=1e-13)
        with torch.no_grad():
            hidden = model.hidden_states(torch.tensor([tokens]))[0, :-1]
            grad = torch.softmax(model.logits(hidden), dim=-1)
            grad[torch.arange(len(tokens) - 1), torch.tensor(tokens[1:])] -= 1.0
        np.testing.assert_allclose(head[row], (grad.T @ hidden).numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("seeds", [None, (11, 12, 13)])
def test_head_losses_one_sequence_at_a_time_equal_the_whole_logits_path(tiny64, seeds):
    """Values, sampled labels and gradients with respect to the hidden states, including a sequence with no
    scored position."""
    import torch

    from lmaudit.influence.gradients import _plain_losses, position_losses

    torch.manual_seed(0)
    counts = [5, 0, 3]
    hidden = torch.randn(sum(counts), tiny64.module.config.hidden_size, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 16, (sum(counts),))
    ours = position_losses(tiny64.logits, hidden, targets, counts, seeds)
    whole = _plain_losses(tiny64.logits(hidden), targets, counts, seeds)
    assert ours.shape == whole.shape == (1 if seeds is None else 2, sum(counts))
    np.testing.assert_allclose(ours.detach().numpy(), whole.detach().numpy(), rtol=1e-12)
    weights = torch.randn(ours.shape, dtype=torch.float64)
    (mine,) = torch.autograd.grad((ours * weights).sum(), hidden)
    (plain,) = torch.autograd.grad((whole * weights).sum(), hidden)
    np.testing.assert_allclose(mine.numpy(), plain.numpy(), rtol=1e-10, atol=1e-13)
