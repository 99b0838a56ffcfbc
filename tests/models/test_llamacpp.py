"""The in-process llama.cpp backend on the bundled GGUF: chat through the file's template, seeded sampling,
and log-likelihood refused with the backend that answers it."""

import pytest

from lmaudit.core.errors import ModelError
from lmaudit.core.types import GenerateRequest, LoglikelihoodRequest, Message

pytest.importorskip("llama_cpp", reason="llama-cpp-python is built by scripts/servers.sh (the test profile)")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fast():
    from lmaudit.models import load_model

    return load_model("smollm2", backend="llamacpp", threads=1)


def test_chat_uses_the_template_and_stops_at_the_end_of_turn(fast):
    answer = fast.generate([GenerateRequest(messages=(Message("user", "Name three fruits."),), max_tokens=40)])[0]
    assert answer.text.strip() and "<|im_end|>" not in answer.text and "<|im_start|>" not in answer.text
    short = fast.generate([GenerateRequest(prompt="Count: one, two, three,", max_tokens=3)])[0]
    assert short.finish_reason == "length" and short.text.strip()


def test_seeded_sampling_is_reproducible(fast):
    def sample(seed):
        request = GenerateRequest(messages=(Message("user", "Tell a short story."),), max_tokens=16,
                                  temperature=0.8, seed=seed)
        return fast.generate([request])[0].text

    first = sample(3)
    fast.generate([GenerateRequest(prompt="Something else in between.", max_tokens=4)])
    assert sample(3) == first
    assert len({sample(s) for s in (4, 5, 6)} | {first}) > 1


def test_loglikelihood_is_refused_with_the_backend_that_answers_it(fast):
    with pytest.raises(ModelError, match="use the hf backend"):
        fast.loglikelihood([LoglikelihoodRequest("The capital of France is", " Paris")])
    assert fast.fingerprint().startswith("llamacpp:") and fast.name == "smollm2"
