"""The humaneval and mbpp tasks end to end in the real sandbox: canonical solutions pass, wrong ones fail,
requests are what the runner needs, and the scores and per-program records are right."""

from __future__ import annotations

import pytest

from lmaudit.codeeval import humaneval, mbpp
from lmaudit.core.errors import ConfigError
from lmaudit.core.types import Generation, LoglikelihoodResult, request_key


def answers(*texts: str) -> list[Generation]:
    return [Generation(text=t, finish_reason="stop") for t in texts]


@pytest.fixture(scope="module")
def he(data_dir):
    task = humaneval(workers=2, timeout=10)
    return task, {s.id: s for s in task.samples()}


@pytest.fixture(scope="module")
def mb(data_dir):
    task = mbpp(workers=2, timeout=10)
    return task, {s.id: s for s in task.samples()}


def test_all_164_humaneval_canonical_solutions_pass(he):
    task, samples = he
    scored = task.score_batch([(s, answers(s.target)) for s in samples.values()])
    failing = {sid: sc.execution[0] for sid, sc in zip(samples, scored) if sc.scores["pass@1"] != 1.0}
    assert not failing
    assert all(sc.execution[0]["status"] == "passed" for sc in scored)


def test_an_empty_body_fails_every_humaneval_problem(he):
    task, samples = he
    scored = task.score_batch([(s, answers("    pass\n")) for s in samples.values()])
    assert [sc.scores["pass@1"] for sc in scored] == [0.0] * 164
    assert {sc.execution[0]["status"] for sc in scored} <= {"failed", "error"}


OFF_BY_ONE = {  # problem: (piece of the canonical solution, the same piece off by one)
    "HumanEval/23": ("len(string)", "len(string) - 1"),
    "HumanEval/35": ("for e in l:", "for e in l[:-1]:"),
    "HumanEval/60": ("range(n + 1)", "range(n)"),
    "HumanEval/100": ("range(n)", "range(n + 1)"),
    "HumanEval/150": ("range(2, n)", "range(2, n + 1)"),
    "MBPP/11": ("range(len(s) - 1,-1,-1)", "range(len(s) - 2,-1,-1)"),
    "MBPP/17": ("4*a", "4*a+1"),
    "MBPP/20": ("p = 0", "p = 1"),
    "MBPP/21": ("(m+1)*n", "m*n"),
}


def test_canonical_solutions_with_an_off_by_one_fail(he, mb):
    for factory, (_, samples) in ((humaneval, he), (mbpp, mb)):
        task = factory(n=2, workers=2)
        chosen = [samples[sid] for sid in OFF_BY_ONE if sid in samples]
        mutants = []
        for sample in chosen:
            right, wrong = OFF_BY_ONE[sample.id]
            assert right in sample.target, sample.id
            mutants.append((sample, answers(sample.target, sample.target.replace(right, wrong, 1))))
        scored = task.score_batch(mutants)
        for sample, sc in zip(chosen, scored):
            outcomes = sc.execution
            assert [o["status"] for o in outcomes] == ["passed", "failed"], (sample.id, outcomes)
            assert outcomes[1]["error_type"] == "AssertionError"
            assert sc.scores == {"pass@1": 0.5, "pass@2": 1.0, "pass_rate": 0.5}


def test_mbpp_canonical_solutions_pass_on_a_spread_sample(mb):
    task, samples = mb
    chosen = list(samples.values())[::10]  # 98 problems across all splits
    scored = task.score_batch([(s, answers(s.target)) for s in chosen])
    failing = {s.id: sc.execution[0] for s, sc in zip(chosen, scored) if sc.scores["pass@1"] != 1.0}
    assert not failing


def test_requests_are_n_distinct_seeded_samples(data_dir):
    task = humaneval(n=5, temperature=0.6, seed=10, max_tokens=300)
    sample = task.samples()[0]
    requests = task.requests(sample)
    assert len(requests) == 5 and len({request_key(r) for r in requests}) == 5
    assert [r.seed for r in requests] == [10, 11, 12, 13, 14]
    assert all(r.temperature == 0.6 and r.max_tokens == 300 and r.prompt == sample.data["prompt"] for r in requests)
    assert "\ndef " in requests[0].stop
    assert task.metrics == ("pass@1", "pass@5", "pass_rate")
    chat = mbpp(n=2, chat=True, ks="1|2")
    chat_request = chat.requests(chat.samples()[0])[0]
    assert chat_request.prompt is None and chat_request.messages[0].role == "user" and chat_request.stop == ()
    assert chat.metrics == ("pass@1", "pass@2", "pass_rate")


def test_scores_count_passing_samples_and_keep_outcomes(he):
    sample = he[1]["HumanEval/23"]
    task = humaneval(n=4, temperature=0.8, ks=[1, 2, 4], timeout=3)
    responses = answers("    return len(string)\n", "    return len(string) + 1\n", "    while True:\n        pass\n",
                        "    return len(string)\n\n\ndef helper():\n    pass\n")
    scored, = task.score_batch([(sample, responses)])
    assert scored.scores == pytest.approx({"pass@1": 0.5, "pass@2": 1 - 1 / 6, "pass@4": 1.0, "pass_rate": 0.5})
    assert task.score(sample, responses) == scored.scores
    outcomes = scored.execution
    assert [o["status"] for o in outcomes] == ["passed", "failed", "timeout", "passed"]
    assert outcomes[2]["error_type"] in {"CPUTimeLimit", "WallTimeLimit"}
    assert all(set(o) == {"status", "error_type", "stderr", "seconds", "exit_code"} for o in outcomes)


def test_chat_answers_are_extracted(he):
    sample = he[1]["HumanEval/23"]
    task = humaneval(n=3, chat=True, timeout=5)
    responses = answers("Sure!\n```python\ndef strlen(string: str) -> int:\n    return len(string)\n```\nThis works.",
                        "The length is len(string).",
                        "```python\ndef strlen(string):\n    return 0\n```")
    scored, = task.score_batch([(sample, responses)])
    assert scored.scores["pass_rate"] == pytest.approx(1 / 3)
    assert [o["status"] for o in scored.execution] == ["passed", "error", "failed"]


def test_config_records_isolation_and_data(he):
    task, _ = he
    config = task.config()
    assert config["sandbox"]["isolation"]["level"] == "bwrap"
    assert config["kind"] == "code" and config["n"] == 1 and config["ks"] == [1]
    (path, digest), = config["data_files"].items()
    assert path.endswith("HumanEval.jsonl.gz") and len(digest) == 64


def test_bad_options_are_clear_errors(data_dir):
    with pytest.raises(ConfigError, match="k <= n"):
        humaneval(n=5, ks=[1, 10])
    with pytest.raises(ConfigError, match="temperature 0"):
        humaneval(n=3, temperature=0)
    with pytest.raises(ConfigError, match="integers"):
        mbpp(n=2, ks="one")
    with pytest.raises(ConfigError, match="at least 1"):
        mbpp(n=0)
    task = humaneval(n=2)
    sample = task.samples()[0]
    with pytest.raises(ConfigError, match="expected 2 responses"):
        task.score(sample, answers("    pass\n"))
    with pytest.raises(ConfigError, match="generated text"):
        task.score(sample, [LoglikelihoodResult(-1.0, True, 1)] * 2)
