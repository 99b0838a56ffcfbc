"""Acceptance: the official `openai` SDK drives the server: completions and chat, echo, top_logprobs, n > 1,
streaming; the numbers are the model's own (its white-box forward pass and the hf backend's generations)."""

from __future__ import annotations

import math

import pytest
import torch
from serve_helpers import MODEL_NAME

from lmaudit.core.types import GenerateRequest, Message

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.slow
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=server.v1, api_key="not-needed", max_retries=0, timeout=120) as sdk:
        yield sdk


def model_rows(model, ids: list[int]) -> torch.Tensor:
    """Row i: the model's log-distribution over token i + 1, from one plain forward pass."""
    with torch.inference_mode():
        return torch.log_softmax(model.forward(torch.tensor([ids], device=model.device))[0].float(), dim=-1).cpu()


def test_echo_logprobs_and_top_logprobs_are_the_models(client, smollm2):
    prompt = "The capital of France is Paris"
    answer = client.completions.create(model=MODEL_NAME, prompt=prompt, echo=True, max_tokens=0, logprobs=5)
    logprobs = answer.choices[0].logprobs
    ids = smollm2.encode(prompt)
    rows = model_rows(smollm2, ids)
    assert answer.choices[0].text == prompt and "".join(logprobs.tokens) == prompt
    assert logprobs.token_logprobs[0] is None
    want = [float(rows[i - 1, ids[i]]) for i in range(1, len(ids))]
    assert logprobs.token_logprobs[1:] == pytest.approx(want, abs=1e-4)
    assert logprobs.token_logprobs[1:4] == pytest.approx([-11.54, -0.34, -2.44], abs=0.01)  # issue 19's figures
    for i in range(1, len(ids)):
        top = logprobs.top_logprobs[i]
        assert 5 <= len(top) <= 6 and top[logprobs.tokens[i]] == logprobs.token_logprobs[i]
        assert max(top.values()) == pytest.approx(float(rows[i - 1].max()), abs=1e-4)
    assert answer.usage.prompt_tokens == len(ids) and answer.usage.completion_tokens == 0


def test_token_id_prompts_and_n_samples(client, smollm2):
    ids = smollm2.encode("Once upon a time")
    by_text = client.completions.create(model=MODEL_NAME, prompt="Once upon a time", max_tokens=6, temperature=0)
    by_ids = client.completions.create(model=MODEL_NAME, prompt=ids, max_tokens=6, temperature=0)
    assert by_ids.choices[0].text == by_text.choices[0].text
    many = client.completions.create(model=MODEL_NAME, prompt=[ids, ids], max_tokens=6, temperature=1.0, n=2,
                                     seed=3)
    assert [c.index for c in many.choices] == [0, 1, 2, 3]
    assert many.choices[0].text == many.choices[2].text and many.choices[1].text == many.choices[3].text
    assert many.choices[0].text != many.choices[1].text  # seed + j for choice j
    assert many.usage.prompt_tokens == 2 * len(ids) and many.usage.completion_tokens == 4 * 6


def test_chat_with_top_logprobs_and_n(client, smollm2):
    want = smollm2.generate([GenerateRequest(messages=(Message("user", QUESTION),), max_tokens=30,
                                             temperature=0)])[0]
    answer = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": QUESTION}],
                                            max_tokens=30, temperature=0, n=2, logprobs=True, top_logprobs=3)
    assert len(answer.choices) == 2
    for choice in answer.choices:
        assert choice.message.role == "assistant" and choice.message.content == want.text
        assert choice.finish_reason == want.finish_reason
        content = choice.logprobs.content
        assert "".join(t.token for t in content) == want.text  # the end-of-sequence token is not content
        assert [t.logprob for t in content] == pytest.approx(list(want.token_logprobs), abs=1e-4)
        for token in content:
            assert len(token.top_logprobs) == 3 and token.top_logprobs[0].logprob == token.logprob  # greedy
            assert bytes(token.bytes).decode() == token.token
    assert answer.usage.completion_tokens == 2 * (len(want.token_logprobs) + (want.finish_reason == "stop"))


def test_chat_streams_what_it_answers_whole(client, capfd):
    messages = [{"role": "system", "content": "Answer in one sentence."}, {"role": "user", "content": QUESTION}]
    whole = client.chat.completions.create(model=MODEL_NAME, messages=messages, max_tokens=25, temperature=0,
                                           logprobs=True)
    chunks = list(client.chat.completions.create(model=MODEL_NAME, messages=messages, max_tokens=25, temperature=0,
                                                 logprobs=True, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    streamed = [t.logprob for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert streamed == [t.logprob for t in whole.choices[0].logprobs.content]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens
    assert "Traceback" not in capfd.readouterr().err  # the SDK hanging up after [DONE] is no fault


def test_completions_stream_with_echo_logprobs_and_n(client):
    settings = {"model": MODEL_NAME, "prompt": "Water boils at", "max_tokens": 6, "temperature": 0.8, "seed": 5,
                "n": 2, "echo": True, "logprobs": 2}
    whole = client.completions.create(**settings)
    texts, values = {0: "", 1: ""}, {0: [], 1: []}
    for chunk in client.completions.create(**settings, stream=True):
        for choice in chunk.choices:
            texts[choice.index] += choice.text
            values[choice.index] += choice.logprobs.token_logprobs
    for choice in whole.choices:
        assert texts[choice.index] == choice.text and choice.text.startswith("Water boils at")
        assert values[choice.index] == choice.logprobs.token_logprobs
    assert whole.choices[0].text != whole.choices[1].text


def test_sdk_errors(client):
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-4o", prompt="x")
    with pytest.raises(openai.BadRequestError, match="top_logprobs"):
        client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "hi"}],
                                       top_logprobs=2)
    listed = [m.id for m in client.models.list()]
    assert listed == [MODEL_NAME]


def test_sampled_chat_logprobs_are_a_distribution(client):
    """Sampled tokens are reported under the model's own distribution, so their probabilities are real ones."""
    answer = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "Name a fruit."}],
                                            max_tokens=8, temperature=1.0, seed=1, logprobs=True, top_logprobs=20)
    for token in answer.choices[0].logprobs.content:
        mass = sum(math.exp(t.logprob) for t in token.top_logprobs)
        assert 0 < mass <= 1 + 1e-5 and token.logprob <= token.top_logprobs[0].logprob
