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


def test_a_request_gets_the_same_text_alone_in_a_batch_and_in_another_order(fast):
    prompts = ["Name three fruits.", "Explain rain in one sentence.", "Write a haiku about snow.", "What is 7 x 6?"]
    batch = [GenerateRequest(messages=(Message("user", p),), max_tokens=12 + 4 * i, temperature=t,
                             seed=(i if t else None), stop=(("\n",) if i == 2 else ()))
             for i, p in enumerate(prompts) for t in (0.0, 0.9)]
    together = fast.generate(batch)
    alone = [fast.generate([request])[0] for request in batch]
    reordered = fast.generate(batch[::-1])[::-1]
    assert [a.text for a in together] == [a.text for a in alone] == [a.text for a in reordered]
    for request, answer in zip(batch, together):  # each row keeps its own limits and stops
        assert answer.text.strip() and len(answer.token_logprobs) <= request.max_tokens
        assert all(p <= 0 for p in answer.token_logprobs)
        assert answer.finish_reason == "stop" or len(answer.token_logprobs) == request.max_tokens
        assert not any(stop in answer.text for stop in request.stop)
    greedy, sampled = together[0::2], together[1::2]
    assert [a.text for a in greedy] != [a.text for a in sampled]


def test_extra_buffers_are_off_exactly_where_the_cpu_has_amx(tmp_path, monkeypatch):
    from lmaudit.models import llamacpp_cpu

    amx, plain = tmp_path / "amx", tmp_path / "plain"
    amx.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile amx_int8\n")
    plain.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\nbugs\t\t: amx_int8_is_not_a_flag_here\n")
    assert llamacpp_cpu.cpu_has_amx(amx) and not llamacpp_cpu.cpu_has_amx(plain)
    assert not llamacpp_cpu.cpu_has_amx(tmp_path / "missing")
    monkeypatch.setattr(llamacpp_cpu, "CPUINFO", amx)
    monkeypatch.delenv(llamacpp_cpu.ENV, raising=False)
    assert llamacpp_cpu.use_extra_buffers() is False
    assert llamacpp_cpu.use_extra_buffers(True) is True  # the model option wins over the CPU
    monkeypatch.setenv(llamacpp_cpu.ENV, "1")
    assert llamacpp_cpu.use_extra_buffers() is True and llamacpp_cpu.use_extra_buffers(False) is False


def test_the_choice_reaches_llama_cpp_while_a_model_loads_and_no_longer(fast):
    import llama_cpp.llama_cpp as api

    from lmaudit.models.llamacpp_cpu import extra_buffers

    before = api.llama_model_default_params().use_extra_bufts
    for enabled in (False, True):
        with extra_buffers(enabled):
            assert api.llama_model_default_params().use_extra_bufts is enabled
    assert api.llama_model_default_params().use_extra_bufts == before
    # The bundled model loaded with the machine's choice, and it says so in its fingerprint when not repacked.
    assert fast.fingerprint().endswith(":plain") is (not fast.repacked)
