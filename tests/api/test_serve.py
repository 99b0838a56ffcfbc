"""The openai backend against `lmaudit serve` on the bundled model: parity with the hf backend.

The server's own wire format, lm-eval's and the openai SDK's use of it are tested in tests/serve/."""

import json
import math

import pytest
from api_helpers import cli, data_dir, records

from lmaudit.core.types import GenerateRequest, LoglikelihoodRequest, Message
from lmaudit.models import load_model
from lmaudit.runner import evaluate
from lmaudit.tasks import get_task

pytestmark = pytest.mark.slow
# 24 questions from 24 subjects keeps the test within its time budget; docs/api-backend.md records --limit 50.
LIMIT = 24


@pytest.fixture(scope="module")
def hf_model(smollm2):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on a 2-core machine shared with a server stall in spin-waits
    yield smollm2
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("data_dir")  # the conftest fixture: skip without data outside CI
def test_mmlu_through_the_cli_matches_the_hf_backend(lmaudit_server, hf_model, tmp_path):
    """Acceptance: same per-sample log-likelihoods (within 1e-3) and the same accuracy as the hf backend."""
    done = cli("eval", "--model", f"openai:smollm2@{lmaudit_server}", "--tasks", "mmlu", "--limit", str(LIMIT),
               "--output-dir", str(tmp_path / "api"), "--private-cache", "--quiet", "--max-concurrency", "16")
    assert done.returncode == 0, done.stderr[-3000:]
    # The hf backend on the same weights, in this process (its model is already loaded).
    evaluate(hf_model, [get_task("mmlu", data_dir=data_dir())], tmp_path / "hf", limit=LIMIT, shared_cache=False,
             progress=False)
    runs = {name: {r["sample_id"]: r for r in records(tmp_path / name)} for name in ("api", "hf")}
    assert len(runs["api"]) == len(runs["hf"]) == LIMIT
    worst = 0.0
    for sample_id, hf_record in runs["hf"].items():
        api_record = runs["api"][sample_id]
        assert api_record["requests"] == hf_record["requests"]
        for got, want in zip(api_record["responses"], hf_record["responses"], strict=True):
            worst = max(worst, abs(got["logprob"] - want["logprob"]))
            assert (got["is_greedy"], got["n_tokens"]) == (want["is_greedy"], want["n_tokens"])
        assert api_record["scores"] == hf_record["scores"]
    assert worst < 1e-3
    results = {name: json.loads((tmp_path / name / "results.json").read_text()) for name in runs}
    assert json.dumps(results["api"]["tasks"], sort_keys=True) == json.dumps(results["hf"]["tasks"], sort_keys=True)
    usage = json.loads((tmp_path / "api" / "manifest.json").read_text())["invocations"][0]["usage"]["target"]
    assert usage["requests"] >= 4 * LIMIT and usage["prompt_tokens"] > 0


def test_letter_choice_on_chat_matches_the_models_first_token(lmaudit_server, hf_model):
    context = "Which planet is known as the Red Planet?\nA. Venus\nB. Mars\nC. Jupiter\nD. Saturn\nAnswer:"
    model = load_model(f"openai:smollm2@{lmaudit_server}", api="chat", loglikelihood="letters")
    results = model.loglikelihood([LoglikelihoodRequest(context, f" {letter}") for letter in "ABCD"])
    import torch

    chat_ids = hf_model.tokenizer.apply_chat_template([{"role": "user", "content": context}],
                                                      add_generation_prompt=True, tokenize=True, return_dict=False)
    with torch.inference_mode():
        logits = hf_model.forward(torch.tensor([list(chat_ids)], device=hf_model.device))[0, -1]
    values, ids = torch.log_softmax(logits.float(), dim=-1).topk(20)
    for letter, result in zip("ABCD", results):
        # A letter's probability: every top-20 first token that is the letter, with or without spaces around it.
        mass = sum(math.exp(v) for v, i in zip(values.tolist(), ids.tolist())
                   if hf_model.tokenizer.decode([i]).strip() == letter)
        assert mass > 0 and result.logprob == pytest.approx(math.log(mass), abs=1e-3)
    outside = model.usage()["letter_choice"]["mean_mass_outside_letters"]
    assert outside == pytest.approx(1 - sum(math.exp(r.logprob) for r in results), abs=1e-6)


def test_greedy_generation_matches_the_hf_backend(lmaudit_server, hf_model):
    requests = [GenerateRequest(messages=(Message("user", "What is the capital of France?"),), max_tokens=10),
                GenerateRequest(prompt="The three primary colours are", max_tokens=8, stop=(",",))]
    api = load_model(f"openai:smollm2@{lmaudit_server}", generation_logprobs=True).generate(requests)
    local = hf_model.generate(requests)
    for got, want in zip(api, local):
        assert (got.text, got.finish_reason) == (want.text, want.finish_reason)
    assert api[0].token_logprobs == pytest.approx(local[0].token_logprobs, abs=1e-3)
