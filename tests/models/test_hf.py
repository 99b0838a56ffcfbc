"""The hf backend on the real bundled model, checked against a plain full forward pass."""

import copy

import pytest
import torch

from lmaudit.core.errors import ConfigError, ModelError, UnknownNameError
from lmaudit.core.types import GenerateRequest, LoglikelihoodRequest, Message
from lmaudit.models import load_model
from lmaudit.models.hf import HFModel

pytestmark = pytest.mark.slow


def naive_loglikelihood(model, context_ids, continuation_ids):
    ids = torch.tensor([context_ids + continuation_ids])
    with torch.inference_mode():
        logprobs = torch.log_softmax(model.forward(ids).float(), dim=-1)[0]
    picked = [logprobs[len(context_ids) - 1 + i] for i in range(len(continuation_ids))]
    total = sum(float(p[t]) for p, t in zip(picked, continuation_ids))
    greedy = all(int(p.argmax()) == t for p, t in zip(picked, continuation_ids))
    return total, greedy


def test_loglikelihood_matches_full_forward(smollm2):
    shots = "The following are questions about numbers.\n\n" + "".join(
        f"What is {i} plus {i}?\nA. {i}\nB. {2 * i}\nAnswer: B\n\n" for i in range(1, 7))
    requests = [LoglikelihoodRequest(shots + q + "\nAnswer:", f" {letter}")
                for q in ("What is 9 plus 9?", "Which is larger, 3 or 4?") for letter in "AB"]
    requests += [LoglikelihoodRequest("The capital of France is", " Paris, a city on the Seine."),
                 LoglikelihoodRequest("", "Hello"),
                 LoglikelihoodRequest("Trailing space ", "moves")]
    results = smollm2.loglikelihood(requests)
    assert smollm2.stats["forward_calls"] > 0
    for request, result in zip(requests, results):
        context_ids, continuation_ids = smollm2.encode_pair(request.context, request.continuation)
        expected, greedy = naive_loglikelihood(smollm2, context_ids, continuation_ids)
        assert result.logprob == pytest.approx(expected, abs=1e-4)
        assert result.is_greedy == greedy and result.n_tokens == len(continuation_ids)


def test_token_spanning_the_join_is_scored_not_emptied(smollm2):
    context, continuation = "Hello wor", "ld"
    whole = smollm2.encode(context + continuation)
    context_ids = smollm2.encode(context)
    assert whole[: len(context_ids)] != context_ids  # lm-eval's slice would be wrong here
    got_context, got_continuation = smollm2.encode_pair(context, continuation)
    assert got_context == context_ids and got_continuation == smollm2.encode("ld", add_special_tokens=False)
    result = smollm2.loglikelihood([LoglikelihoodRequest(context, continuation)])[0]
    expected, _ = naive_loglikelihood(smollm2, got_context, got_continuation)
    assert result.n_tokens >= 1 and result.logprob == pytest.approx(expected, abs=1e-4)


def test_fixed_and_auto_batch_sizes_agree(smollm2):
    requests = [LoglikelihoodRequest(f"Fact number {i}: the sky is", " blue") for i in range(12)]
    auto = smollm2.loglikelihood(requests)
    fixed = HFModel(smollm2.module, smollm2.tokenizer, fingerprint="x", name="x", batch_size=1).loglikelihood(requests)
    assert [a.logprob for a in auto] == pytest.approx([f.logprob for f in fixed], abs=1e-4)


def test_empty_continuation_is_an_error(smollm2):
    with pytest.raises(ModelError, match="empty continuation"):
        smollm2.loglikelihood([LoglikelihoodRequest("context", "")])


def test_greedy_generation_chat_stop_and_length(smollm2):
    chat = GenerateRequest(messages=(Message("user", "What is the capital of France?"),), max_tokens=20)
    first, second = smollm2.generate([chat, chat])
    assert "Paris" in first.text and first.text == second.text
    assert first.token_logprobs == pytest.approx(second.token_logprobs, abs=1e-4)
    stopped = smollm2.generate([GenerateRequest(messages=chat.messages, max_tokens=20, stop=("Paris",))])[0]
    assert "Paris" not in stopped.text and stopped.finish_reason == "stop"
    short = smollm2.generate([GenerateRequest(prompt="Count: one, two, three,", max_tokens=3)])[0]
    assert short.finish_reason == "length" and len(short.token_logprobs) == 3
    assert all(lp <= 0 for lp in short.token_logprobs)


def test_sampling_is_reproducible_per_seed(smollm2):
    def sample(seed):
        return smollm2.generate([GenerateRequest(prompt="Once upon a time", max_tokens=12, temperature=1.0,
                                                 seed=seed)])[0].text
    assert sample(1) == sample(1)
    assert len({sample(s) for s in range(4)}) > 1


def test_bad_specs():
    with pytest.raises(UnknownNameError, match="Did you mean 'gguf'"):
        load_model("ggfu:/x")
    with pytest.raises(ConfigError, match="needs an argument"):
        load_model("hf:")
    with pytest.raises(ModelError, match="GGUF file not found"):
        load_model("gguf:/nonexistent/model.gguf")


def test_a_sampled_text_depends_on_its_seed_not_its_batch(smollm2):
    """Alone, in a batch of 16 and in another order: the same text for the same request; rows keep their own
    max tokens and stop strings, and greedy rows in the same batch are unaffected."""
    torch.set_num_threads(1)
    prompts = [f"Write one sentence about the number {i}." for i in range(14)]
    requests = [GenerateRequest(messages=(Message("user", p),), max_tokens=8 + i % 5, temperature=0.8, seed=100 + i)
                for i, p in enumerate(prompts)]
    requests.append(GenerateRequest(messages=(Message("user", "Name a colour."),), max_tokens=12, stop=(".",)))
    requests.append(GenerateRequest(messages=(Message("user", "Say hello."),), max_tokens=6))  # greedy
    alone = [smollm2.generate([r])[0] for r in requests]
    together = smollm2.generate(requests)
    shuffled_order = list(reversed(range(len(requests))))
    shuffled = smollm2.generate([requests[i] for i in shuffled_order])
    assert [g.text for g in together] == [g.text for g in alone]
    assert [shuffled[shuffled_order.index(i)].text for i in range(len(requests))] == [g.text for g in alone]
    for request, generation in zip(requests, together):
        assert len(generation.token_logprobs) <= request.max_tokens
        assert generation.finish_reason == "stop" or len(generation.token_logprobs) == request.max_tokens
    assert len({g.text for g in together[:14]}) > 7  # the seeds differ, so do most texts
    assert not any(s in together[14].text for s in requests[14].stop)


def test_greedy_decoding_equals_transformers_generate(smollm2):
    torch.set_num_threads(1)
    ids = smollm2.tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                                add_generation_prompt=True, tokenize=False)
    prompt = smollm2.encode(ids, add_special_tokens=False)
    with torch.inference_mode():
        reference = smollm2.module.generate(torch.tensor([prompt]), max_new_tokens=16, do_sample=False,
                                            pad_token_id=smollm2.tokenizer.pad_token_id)
    expected = smollm2.decode(reference[0, len(prompt):].tolist())
    ours = smollm2.generate([GenerateRequest(messages=(Message("user", "What is the capital of France?"),),
                                             max_tokens=16)])[0]
    assert ours.text == expected.strip() or ours.text == expected


def _shared_prefix_requests():
    """Two groups of questions behind long shared prefixes, suffixes of very different lengths, multi-token reads."""
    requests = []
    for topic in ("rivers", "planets"):
        shots = f"Questions about {topic}.\n\n" + "".join(
            f"Question {i}: is {topic} number {i} large?\nAnswer: yes\n\n" for i in range(8))
        for length in (1, 4, 17, 40):
            question = shots + f"Question: {' and'.join(['is it wide'] * length)}?\nAnswer:"
            requests += [LoglikelihoodRequest(question, " yes"), LoglikelihoodRequest(question, " no, not really")]
    return requests


def test_packed_suffixes_match_full_forward_without_padding(smollm2):
    """Suffixes packed end to end behind one prefix copy: same numbers as a plain forward, no padded tokens,
    under a budget small enough to need several packed rows, and the model's attention setting restored."""
    torch.set_num_threads(1)
    requests = _shared_prefix_requests()
    small = HFModel(smollm2.module, smollm2.tokenizer, fingerprint="x", name="x")
    small._token_budget = 64
    results = small.loglikelihood(requests)
    assert smollm2.module.config._attn_implementation == "sdpa"
    inputs = {tuple((c + k)[:-1]) for c, k in (small.encode_pair(r.context, r.continuation) for r in requests)}
    assert small.stats["decoder_tokens"] < sum(len(i) for i in inputs)  # the prefixes ran once per group
    assert small.stats["forward_calls"] > 2 + 2  # two prefixes and more than one packed row per group
    assert small.stats["attention_pairs"] < sum(len(i) * (len(i) + 1) // 2 for i in inputs)
    for request, result in zip(requests, results):
        context_ids, continuation_ids = small.encode_pair(request.context, request.continuation)
        expected, greedy = naive_loglikelihood(smollm2, context_ids, continuation_ids)
        assert result.logprob == pytest.approx(expected, abs=1e-4)
        assert result.is_greedy == greedy and result.n_tokens == len(continuation_ids)


def test_attention_pairs_of_one_input_are_its_causal_pairs(smollm2):
    """The benchmarks' attention count: one input alone, whether split into prefix and suffix or not, computes
    exactly the L (L + 1) / 2 pairs of causal attention over its L tokens."""
    for context in ["Short question?", " ".join(["A context long enough to cache a prefix."] * 8)]:
        model = HFModel(smollm2.module, smollm2.tokenizer, fingerprint="x", name="x")
        model.loglikelihood([LoglikelihoodRequest(context, " an answer of several tokens")])
        context_ids, continuation_ids = model.encode_pair(context, " an answer of several tokens")
        length = len(context_ids) + len(continuation_ids) - 1
        assert model.stats["attention_pairs"] == length * (length + 1) // 2


def test_packed_and_padded_paths_agree(smollm2, monkeypatch):
    """The padded-batch path (kept for attention the packed kernel does not cover) gives the same numbers."""
    from lmaudit.models import hf

    torch.set_num_threads(1)
    requests = _shared_prefix_requests()
    packed_model = HFModel(smollm2.module, smollm2.tokenizer, fingerprint="x", name="x")
    packed = packed_model.loglikelihood(requests)
    monkeypatch.setattr(hf, "supports_shared_prefix", lambda config: False)
    padded_model = HFModel(smollm2.module, smollm2.tokenizer, fingerprint="x", name="x")
    padded = padded_model.loglikelihood(requests)
    assert [p.logprob for p in packed] == pytest.approx([p.logprob for p in padded], abs=1e-4)
    assert [p.is_greedy for p in packed] == [p.is_greedy for p in padded]
    assert packed_model.stats["decoder_tokens"] == padded_model.stats["decoder_tokens"]  # real tokens, both


def test_two_part_and_masked_prefix_attention_agree(smollm2, monkeypatch):
    """The CPU's two flash-attention parts merged by log-sum-exp, and the one masked call used elsewhere."""
    from lmaudit.models import hf_prefix_attention

    torch.set_num_threads(1)
    requests = _shared_prefix_requests()
    two_part = HFModel(smollm2.module, smollm2.tokenizer, fingerprint="x", name="x").loglikelihood(requests)
    monkeypatch.setattr(hf_prefix_attention, "_CPU_FLASH", None)
    masked = HFModel(smollm2.module, smollm2.tokenizer, fingerprint="x", name="x").loglikelihood(requests)
    assert [p.logprob for p in two_part] == pytest.approx([p.logprob for p in masked], abs=1e-4)
    assert [p.is_greedy for p in two_part] == [p.is_greedy for p in masked]


def test_packed_kernel_only_for_plain_causal_attention(smollm2):
    from lmaudit.models.hf_prefix_attention import supports_shared_prefix

    config = smollm2.module.config
    assert supports_shared_prefix(config)
    windowed = copy.deepcopy(config)
    windowed.sliding_window = 4096
    assert not supports_shared_prefix(windowed)
    eager_free = copy.deepcopy(config)
    eager_free._attn_implementation = "flash_attention_2"
    assert not supports_shared_prefix(eager_free)
