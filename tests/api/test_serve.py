"""`lmaudit serve` on the bundled model, and the backend against it: parity with the hf backend."""

import json
import math
import urllib.error
import urllib.request

import pytest

from lmaudit.core.types import GenerateRequest, LoglikelihoodRequest, Message
from lmaudit.models import load_model

from lmaudit.runner import evaluate
from lmaudit.tasks import get_task

from api_helpers import cli, data_dir, records

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


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


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
    usage = json.loads((tmp_path / "api" / "manifest.json").read_text())["invocations"][0]["usage"]
    assert usage["requests"] >= 4 * LIMIT and usage["prompt_tokens"] > 0


def test_letter_choice_on_chat_matches_the_models_first_token(lmaudit_server, hf_model):
    context = "Which planet is known as the Red Planet?\nA. Venus\nB. Mars\nC. Jupiter\nD. Saturn\nAnswer:"
    model = load_model(f"openai:smollm2@{lmaudit_server}", api="chat", loglikelihood="letters")
    results = model.loglikelihood([LoglikelihoodRequest(context, f" {letter}") for letter in "ABCD"])
    import torch

    chat_ids = hf_model.tokenizer.apply_chat_template([{"role": "user", "content": context}],
                                                      add_generation_prompt=True, tokenize=True, return_dict=False)
    with torch.inference_mode():
        logits = hf_model.model(input_ids=torch.tensor([list(chat_ids)])).logits[0, -1]
    values, ids = torch.log_softmax(logits.float(), dim=-1).topk(20)
    for letter, result in zip("ABCD", results):
        # A letter's probability: every top-20 first token that is the letter, with or without spaces around it.
        mass = sum(math.exp(v) for v, i in zip(values.tolist(), ids.tolist())
                   if hf_model.tokenizer.decode([i]).strip() == letter)
        assert mass > 0 and result.logprob == pytest.approx(math.log(mass), abs=1e-3)
    outside = model.usage["letter_choice"]["mean_mass_outside_letters"]
    assert outside == pytest.approx(1 - sum(math.exp(r.logprob) for r in results), abs=1e-6)


def test_greedy_generation_matches_the_hf_backend(lmaudit_server, hf_model):
    requests = [GenerateRequest(messages=(Message("user", "What is the capital of France?"),), max_tokens=10),
                GenerateRequest(prompt="The three primary colours are", max_tokens=8, stop=(",",))]
    api = load_model(f"openai:smollm2@{lmaudit_server}", generation_logprobs=True).generate(requests)
    local = hf_model.generate(requests)
    for got, want in zip(api, local):
        assert (got.text, got.finish_reason) == (want.text, want.finish_reason)
    assert api[0].token_logprobs == pytest.approx(local[0].token_logprobs, abs=1e-3)


def test_server_answers_in_the_openai_format(lmaudit_server):
    status, body = post(lmaudit_server + "/completions", {
        "model": "smollm2", "prompt": "The capital of France is", "max_tokens": 2, "temperature": 0,
        "echo": True, "logprobs": 2})
    assert status == 200
    logprobs = body["choices"][0]["logprobs"]
    assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] is None
    assert "".join(logprobs["tokens"]) == body["choices"][0]["text"]
    assert all(len(top) <= 2 for top in logprobs["top_logprobs"][1:])
    assert body["usage"]["total_tokens"] == len(logprobs["tokens"])
    assert post(lmaudit_server + "/completions", {"model": "other", "prompt": "x"})[0] == 404
    status, body = post(lmaudit_server + "/chat/completions", {"model": "smollm2", "messages": "hi"})
    assert status == 400 and body["error"]["param"] == "messages"
    status, body = post(lmaudit_server + "/chat/completions", {
        "model": "smollm2", "messages": [{"role": "user", "content": "hi"}], "top_logprobs": 3})
    assert status == 400 and "logprobs" in body["error"]["message"]
