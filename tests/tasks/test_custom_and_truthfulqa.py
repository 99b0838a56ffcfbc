import json

import pytest

from lmaudit.core.errors import ConfigError, RowError
from lmaudit.core.types import Generation, LoglikelihoodResult
from lmaudit.tasks import choice_scores, from_toml, get_task
from lmaudit.tasks.custom import mcq


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_mcq_accepts_index_letter_and_text_answers(tmp_path):
    path = _write(tmp_path / "q.jsonl", [
        {"q": "2+2?", "opts": ["3", "4"], "gold": 1, "topic": "math"},
        {"q": "Sky?", "opts": ["blue", "green"], "gold": "A", "topic": "nature"},
        {"q": "Grass?", "opts": ["blue", "green"], "gold": "green", "topic": "nature"},
    ])
    task = mcq(str(path), question="q", choices="opts", answer="gold", group_by=["topic"])
    assert [s.target for s in task.samples()] == [1, 0, 1]
    requests = task.requests(task.samples()[0])
    assert requests[0].context == "2+2?\nA. 3\nB. 4\nAnswer:" and [r.continuation for r in requests] == [" A", " B"]


def test_mcq_bad_answer_names_file_line_field(tmp_path):
    path = _write(tmp_path / "q.jsonl", [{"q": "a", "choices": ["x", "y"], "answer": 0},
                                         {"q": "b", "choices": ["x", "y"], "answer": "Z"}])
    with pytest.raises(RowError, match=r"q.jsonl, line 2, field 'answer'"):
        mcq(str(path), question="q").samples()


def test_toml_task_file_and_fewshot(tmp_path):
    _write(tmp_path / "quiz.jsonl", [{"question": f"q{i}", "A": "x", "B": "y", "answer": i % 2} for i in range(4)])
    (tmp_path / "quiz.toml").write_text('kind = "mcq"\npath = "quiz.jsonl"\nchoices = ["A", "B"]\nstyle = "cloze"\n')
    task = from_toml(tmp_path / "quiz.toml", num_fewshot=1)
    assert task.name == "quiz" and len(task.samples()) == 3
    context = task.requests(task.samples()[0])[0].context
    assert context == "Question: q0\nAnswer: x\n\nQuestion: q1\nAnswer:"
    (tmp_path / "bad.toml").write_text('kind = "essay"\npath = "quiz.jsonl"\n')
    with pytest.raises(ConfigError, match="'kind' must be"):
        from_toml(tmp_path / "bad.toml")


def test_generate_task_regex_extraction(tmp_path):
    path = _write(tmp_path / "g.jsonl", [{"question": "Capital of France?", "answer": "Paris"}])
    task = get_task("generate", path=str(path), prompt="Q: {question}\nA:", target="answer",
                    answer_pattern=r"answer is (\w+)")
    sample = task.samples()[0]
    assert task.requests(sample)[0].prompt == "Q: Capital of France?\nA:"
    assert task.score(sample, [Generation("I think the answer is Paris.", "stop")]) == \
        {"exact_match": 1.0, "contains": 1.0}
    assert task.score(sample, [Generation("Lyon", "stop")]) == {"exact_match": 0.0, "contains": 0.0}
    bad = get_task("generate", path=str(path), prompt="{missing}", target="answer")
    with pytest.raises(RowError, match="field 'missing'"):
        bad.samples()


def test_choice_scores_normalisations():
    # raw picks the short choice; per character and per byte pick the long one
    scores = choice_scores([-6.0, -4.0], ["abcdefghijkl", "abc"], gold=0, metrics=("acc", "acc_norm", "acc_bytes"))
    assert scores == {"acc": 0.0, "acc_norm": 1.0, "acc_bytes": 1.0}
    # bytes differ from characters for non-ASCII text
    scores = choice_scores([-4.0, -3.0], ["éé", "ab"], gold=0, metrics=("acc_norm", "acc_bytes"))
    assert scores == {"acc_norm": 0.0, "acc_bytes": 1.0}


def test_truthfulqa_mc1_and_mc2(data_dir):
    mc1, mc2 = get_task("truthfulqa_mc1"), get_task("truthfulqa_mc2")
    assert len(mc1.samples()) == 817
    sample = mc2.samples()[0]
    n_true, n_false = len(sample.data["true"]), len(sample.data["false"])
    requests = mc2.requests(sample)
    assert len(requests) == n_true + n_false and requests[0].context.endswith(f"Q: {sample.data['question']}\nA:")
    lls = [LoglikelihoodResult(-1.0, False, 1)] * n_true + [LoglikelihoodResult(-2.0, False, 1)] * n_false
    import math
    expected = n_true * math.exp(-1) / (n_true * math.exp(-1) + n_false * math.exp(-2))
    assert mc2.score(sample, lls)["mc2"] == pytest.approx(expected)
    first = mc1.samples()[0]
    lls = [LoglikelihoodResult(-0.5, False, 1)] + [LoglikelihoodResult(-1.0, False, 1)] * len(first.data["false"])
    assert mc1.score(first, lls) == {"acc": 1.0}


def test_unknown_task_and_option():
    with pytest.raises(ConfigError, match="Did you mean 'mmlu'"):
        get_task("mmlx")
    with pytest.raises(ConfigError, match="does not take option"):
        get_task("demo_mcq", temperature=2)
