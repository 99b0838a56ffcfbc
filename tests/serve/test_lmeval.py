"""Acceptance: lm-eval 0.4.13's `local-completions` against `lmaudit serve` equals lm-eval's own `hf` model.

20 MMLU anatomy questions, 0-shot and 5-shot (one task each, so every lm-eval run covers both), scored by:
- lm-eval's `hf` model on the weights the server holds (the transformers folder the bundled GGUF was rebuilt into);
- `local-completions` with default options: it finds the server's tokenizer routes, sends token ids;
- `local-completions` with tokenized_requests=False: it sends text, the server tokenizes it.
(With tokenizer_backend=huggingface lm-eval tokenizes locally; test_protocol.py checks that the server's /tokenize
gives exactly that tokenizer's ids.)
Per-sample log-likelihoods must agree within 1e-4, greedy flags and accuracy exactly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from lmaudit.interop.lmeval import write_mmlu_tasks

pytestmark = pytest.mark.slow
SUBJECT = "anatomy"
LIMIT = 20
SHOTS = (0, 5)
TOLERANCE = 1e-4

lm_eval = pytest.importorskip("lm_eval", reason="the parity test needs lm_eval==0.4.13 (requirements-test.txt)")


@pytest.fixture(scope="module")
def tasks(tmp_path_factory, data_dir) -> tuple[Any, list[str]]:
    """One lm-eval task per shot count over the same local MMLU files."""
    from lm_eval.tasks import TaskManager

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    folder = tmp_path_factory.mktemp("lmeval-tasks")
    (base,) = write_mmlu_tasks([SUBJECT], folder, str(data_dir))
    template = (folder / f"{base}.yaml").read_text()
    names = []
    for shots in SHOTS:
        name = f"{base}_{shots}shot"
        (folder / f"{name}.yaml").write_text(template.replace(f"task: {base}\n", f"task: {name}\n")
                                             + f"num_fewshot: {shots}\n")
        names.append(name)
    (folder / f"{base}.yaml").unlink()
    return TaskManager(include_path=str(folder)), names


def run_lmeval(model: Any, tasks: tuple[Any, list[str]], model_args: str | None = None) -> dict[str, Any]:
    manager, names = tasks
    output = lm_eval.simple_evaluate(model=model, model_args=model_args, tasks=names, limit=LIMIT,
                                     log_samples=True, task_manager=manager, random_seed=0, numpy_random_seed=0,
                                     torch_random_seed=0, fewshot_random_seed=0)
    return {name: {"acc": output["results"][name]["acc,none"],
                   "samples": {int(s["doc_id"]): [(float(r[0][0]), bool(r[0][1])) for r in s["resps"]]
                               for s in output["samples"][name]}}
            for name in names}


@pytest.fixture(scope="module")
def reference(smollm2, tasks, one_thread) -> dict[str, Any]:
    from lm_eval.models.huggingface import HFLM

    folder = Path(smollm2.module.config._name_or_path)
    assert (folder / "config.json").is_file(), folder  # the rebuilt transformers folder the server's model came from
    return run_lmeval(HFLM(pretrained=str(folder), dtype="float32", batch_size=8, device="cpu"), tasks)


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> float:
    worst = 0.0
    for name, expected in want.items():
        assert sorted(got[name]["samples"]) == sorted(expected["samples"]) == list(range(LIMIT))
        for doc, choices in expected["samples"].items():
            for (ll, greedy), (ref_ll, ref_greedy) in zip(got[name]["samples"][doc], choices, strict=True):
                assert abs(ll - ref_ll) < TOLERANCE, (name, doc, ll, ref_ll)
                assert greedy == ref_greedy, (name, doc)
                worst = max(worst, abs(ll - ref_ll))
        assert got[name]["acc"] == expected["acc"], name
    return worst


def prompt_kinds(bodies: list[tuple[str, dict[str, Any]]]) -> set[str]:
    kinds = set()
    for path, body in bodies:
        if path == "/v1/completions":
            prompt = body["prompt"]
            kinds.add("text" if isinstance(prompt, str) else "ids" if isinstance(prompt[0], int) else
                      "lists of ids" if isinstance(prompt[0], list) else "texts")
    return kinds


@pytest.mark.parametrize("options, sent", [
    ("", {"lists of ids"}),
    ("tokenized_requests=False", {"text"}),
], ids=["default", "text-prompts"])
def test_local_completions_equals_lmevals_hf_model(server, smollm2, tasks, reference, options, sent):
    server.bodies.clear()
    stats = server.server.engine.stats
    before = stats["forward_tokens"]
    args = f"model=smollm2,base_url={server.v1}/completions" + ("," + options if options else "")
    got = run_lmeval("local-completions", tasks, args)
    assert prompt_kinds(server.bodies) == sent  # the form the failing run used is really exercised
    worst = assert_same(got, reference)
    # The zeros of issue 19 came from a missing end-of-sequence token; none of these log-likelihoods is 0.
    assert all(ll < 0 for result in got.values() for choices in result["samples"].values() for ll, _ in choices)
    # lm-eval sends a question's choices one after another: the prefix cache runs each shared part once.
    prompts = [body["prompt"] for path, body in server.bodies if path == "/v1/completions"]
    prompt_tokens = sum(len(smollm2.encode(p)) if isinstance(p, str) else sum(map(len, p)) for p in prompts)
    forward = stats["forward_tokens"] - before
    assert forward < 0.2 * prompt_tokens
    print(f"\nlm-eval local-completions {options or 'default'}: {len(prompts)} requests, worst |difference| "
          f"{worst:.1e}, accuracy {[round(r['acc'], 4) for r in got.values()]} (0/5-shot), {prompt_tokens} prompt "
          f"tokens, {forward} run through the model")
