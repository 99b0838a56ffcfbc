"""llama.cpp's server (llama-cpp-python[server]) on the bundled GGUF: its echo logprobs are wrong, and caught."""

import math

import pytest

from lmaudit.core.errors import ModelError
from lmaudit.core.types import GenerateRequest, LoglikelihoodRequest, Message
from lmaudit.models import load_model

pytestmark = pytest.mark.slow


def test_wrong_echo_logprobs_are_refused_with_the_alternatives(llama_server):
    model = load_model(f"openai:smollm2@{llama_server}")
    with pytest.raises(ModelError, match="echoed prompt log-probabilities are wrong") as caught:
        model.loglikelihood([LoglikelihoodRequest("The capital of France is", " Paris")])
    assert "lmaudit serve" in str(caught.value) and "loglikelihood=letters" in str(caught.value)


def test_generation_and_letter_choice_work(llama_server):
    model = load_model(f"openai:smollm2@{llama_server}", generation_logprobs=True)
    out = model.generate([GenerateRequest(messages=(Message("user", "Name a colour."),), max_tokens=8)])[0]
    assert out.text and len(out.token_logprobs) >= 1 and all(v <= 0 for v in out.token_logprobs)
    assert model.usage()["completion_tokens"] == len(out.token_logprobs)
    letters = load_model(f"openai:smollm2@{llama_server}", api="chat", loglikelihood="letters")
    context = "Which is a fruit?\nA. Carrot\nB. Apple\nC. Potato\nD. Onion\nAnswer:"
    results = letters.loglikelihood([LoglikelihoodRequest(context, f" {x}") for x in "ABCD"])
    assert sum(math.exp(r.logprob) for r in results) <= 1 + 1e-6
    assert sum(r.is_greedy for r in results) <= 1
    assert 0 <= letters.usage()["letter_choice"]["mean_mass_outside_letters"] <= 1
