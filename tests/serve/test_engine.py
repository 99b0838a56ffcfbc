"""The engine's scores and generations against the model's own forward pass and the hf backend."""

from __future__ import annotations

import pytest
import torch

from lmaudit.core.types import GenerateRequest, Message
from lmaudit.serve.engine import Engine, Sampling

pytestmark = pytest.mark.slow
PROMPT = "The following are multiple choice questions about geography.\nWhat is the capital of France?\nAnswer:"


@pytest.fixture(scope="module")
def engine(smollm2, one_thread) -> Engine:
    return Engine(smollm2)


def forward_logprobs(model, ids: list[int]) -> list[float]:
    """log p(token i | tokens < i) for i >= 1, from one plain forward pass of the white-box model."""
    with torch.inference_mode():
        logits = model.forward(torch.tensor([ids], device=model.device))[0].float()
    rows = torch.log_softmax(logits[:-1], dim=-1)
    return rows.gather(1, torch.tensor(ids[1:], device=model.device).unsqueeze(1)).squeeze(1).tolist()


def test_scores_are_the_models_through_every_cache_path(engine, smollm2):
    base = smollm2.encode(PROMPT + " A")
    sibling = base[:-1] + smollm2.encode(" B", add_special_tokens=False)  # diverges at the last token
    longer = base + smollm2.encode("\nThe river through it is the Seine.", add_special_tokens=False)
    prefix = base[:10]  # a strict prefix of a cached sequence
    middle = base[:8] + smollm2.encode(" history.\nWho wrote Hamlet?", add_special_tokens=False)
    # what each must run: all of it; its last two tokens (the shared one again, for the row that predicts the
    # new one); its new tokens; its last token; from the divergence on; nothing (still cached)
    runs = [len(base), 2, len(longer) - len(base), 1, len(middle) - 7, 0]
    for ids, expected_run in zip((base, sibling, longer, prefix, middle, base), runs, strict=True):
        before = engine.stats["forward_tokens"]
        scored = engine.score(ids)
        assert engine.stats["forward_tokens"] - before == expected_run
        assert scored.ids == tuple(ids) and scored.logprobs[0] is None
        assert scored.logprobs[1:] == pytest.approx(forward_logprobs(smollm2, ids), abs=1e-4)
        # the alternatives at each position are the model's best, and the best one is at least the chosen one
        assert all(scored.top_logprobs[i, 0] >= scored.logprobs[i] - 1e-6 for i in range(1, len(ids)))
    cold = Engine(smollm2, cache_entries=0).score(middle)
    assert cold.logprobs[1:] == pytest.approx(engine.score(middle).logprobs[1:], abs=1e-4)


def test_scores_are_the_same_across_chunk_boundaries(smollm2, one_thread):
    ids = smollm2.encode(PROMPT + " A\n" + PROMPT + " B")
    want = forward_logprobs(smollm2, ids)
    with torch.inference_mode():
        after = torch.log_softmax(smollm2.forward(torch.tensor([ids]))[0, -1].float(), dim=-1)
    for cut in (None, len(ids) // 2, len(ids) // 2 + 3, len(ids) - 1):
        engine = Engine(smollm2, chunk=7)  # boundaries everywhere, cold and after a cached prefix
        if cut is not None:
            engine.score(ids[:cut])
        scored = engine.score(ids)
        assert scored.logprobs[1:] == pytest.approx(want, abs=1e-4)
        assert scored.top_ids.shape == scored.top_logprobs.shape == (len(ids), 20)
        assert torch.allclose(scored.next_row.cpu(), after, atol=1e-4)


def test_greedy_generation_is_the_hf_backends_and_its_logprobs_the_models(engine, smollm2):
    request = GenerateRequest(prompt="The three primary colours are", max_tokens=12, temperature=0)
    want = smollm2.generate([request])[0]
    ids = smollm2.encode(request.prompt)
    steps = list(engine.generate(ids, Sampling(max_tokens=12, temperature=0)))
    assert "".join(step.text for step in steps) == want.text
    assert [s.logprob for s in steps] == pytest.approx(list(want.token_logprobs), abs=1e-4)
    generated = [s.token_id for s in steps]
    assert [s.logprob for s in steps] == pytest.approx(forward_logprobs(smollm2, ids + generated)[-12:], abs=1e-4)
    assert steps[-1].finish_reason == "length" and all(s.finish_reason is None for s in steps[:-1])
    offsets = [s.offset for s in steps]
    assert offsets == [sum(len(s.piece) for s in steps[:i]) for i in range(len(steps))]


def test_end_of_sequence_is_a_listed_step_that_adds_no_text(engine, smollm2):
    chat = (Message("user", "What is the capital of France?"),)
    want = smollm2.generate([GenerateRequest(messages=chat, max_tokens=40, temperature=0)])[0]
    assert want.finish_reason == "stop"  # the model ends its answer here: the premise of the test
    ids = engine.encode_chat([{"role": "user", "content": chat[0].content}])
    steps = list(engine.generate(ids, Sampling(max_tokens=40, temperature=0)))
    last = steps[-1]
    assert last.token_id == smollm2.tokenizer.eos_token_id and last.special and last.text == ""
    assert last.piece == smollm2.tokenizer.eos_token and last.finish_reason == "stop"
    assert "".join(s.text for s in steps) == want.text


def test_seeded_sampling_repeats_and_top_p_near_zero_is_greedy(engine, smollm2):
    ids = smollm2.encode("Once upon a time")

    def tokens(**settings):
        return [s.token_id for s in engine.generate(ids, Sampling(max_tokens=10, **settings))]

    first = tokens(temperature=1.0, seed=7)
    assert tokens(temperature=1.0, seed=7) == first
    assert any(tokens(temperature=1.0, seed=seed) != first for seed in (8, 9, 10))
    assert tokens(temperature=1.0, top_p=1e-6, seed=3) == tokens(temperature=0)


def test_greedy_choices_are_computed_once(engine, smollm2):
    ids = smollm2.encode("Counting: one, two,")
    choices = [list(steps) for steps in engine.choices(ids, Sampling(max_tokens=5, temperature=0), 3)]
    assert choices[0] == choices[1] == choices[2] and len(choices[0]) == 5
    sampled = [[s.token_id for s in steps]
               for steps in engine.choices(ids, Sampling(max_tokens=8, temperature=1.0, seed=1), 3)]
    assert sampled[0] == [s.token_id for s in engine.generate(ids, Sampling(8, 1.0, seed=1))]
    assert sampled[1] == [s.token_id for s in engine.generate(ids, Sampling(8, 1.0, seed=2))]
