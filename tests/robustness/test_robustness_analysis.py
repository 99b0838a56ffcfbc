"""Variant tasks through the real runner with scripted models whose answers are known, and the metrics they give.

- PositionModel always picks the first listed option (and says Yes): a pure position bias, the textbook case of
  an answer that moves with the options;
- OracleModel knows each question's gold text: it picks it wherever it is shown (and "None of the above" when it
  is removed), and says Yes only to it.
"""

import json
import re

import pytest

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.core.types import LoglikelihoodRequest, LoglikelihoodResult, SampleRecord
from lmaudit.robustness import robustness_report, run_consistency, variant_tasks
from lmaudit.robustness.tasks import question_block
from lmaudit.runner import RunDir, select_samples
from lmaudit.tasks import get_task
from lmaudit.tasks.custom import demo_mcq, mcq
from lmaudit.testing.counting import CountingModel

DEMO = demo_mcq()
GOLD_TEXT = {s.data["question"]: s.data["choices"][s.target] for s in DEMO.samples()}


def shown_options(context):
    """[(label, text)] of the last question block in a prompt."""
    block = context.rsplit("\n\n", 1)[-1]
    return re.findall(r"^(\w)\. (.*)$", block, flags=re.MULTILINE)


class ScriptedModel:
    def __init__(self, name):
        self.name = name

    def fingerprint(self):
        return self.name

    def loglikelihood(self, requests):
        return [LoglikelihoodResult(0.0 if self.picks(r) else -3.0, self.picks(r), 1) for r in requests]

    def generate(self, requests):
        raise AssertionError("not used")


class PositionModel(ScriptedModel):
    def picks(self, request):
        if "Proposed answer:" in request.context:
            return request.continuation == " Yes"
        return request.continuation.strip() == shown_options(request.context)[0][0]


class OracleModel(ScriptedModel):
    def picks(self, request):
        question = request.context.rsplit("\n\n", 1)[-1].split("\n")[0]
        gold = GOLD_TEXT[question]
        if "Proposed answer:" in request.context:
            proposed = re.search(r"Proposed answer: (.*)", request.context).group(1)
            return (proposed == gold) == (request.continuation == " Yes")
        options = dict(shown_options(request.context))
        wanted = next((label for label, text in options.items() if text == gold), None)
        if wanted is None:
            wanted = next(label for label, text in options.items() if text == "None of the above")
        return request.continuation.strip() == wanted


def families(report):
    return {row.family: row for row in report.overall.families}


def test_a_position_biased_model_is_inconsistent_under_rotation_and_consistent_under_relabelling(tmp_path):
    model = PositionModel("position")
    run = run_consistency(model, DEMO, tmp_path / "run", permutations=2, cache_path=tmp_path / "c.sqlite",
                          progress=False)
    golds = [s.target for s in DEMO.samples()]
    first_right = sum(g == 0 for g in golds) / len(golds)
    rows = families(run.report)
    assert set(rows) == {"rotate", "permute", "relabel", "drop", "nota", "order+labels", "all"}
    assert rows["rotate"].consistency.value == 0 and rows["rotate"].revas_rate.value == 1
    assert rows["rotate"].accuracy.value == pytest.approx((1 - first_right) / 3)
    assert rows["rotate"].consistent_accuracy.value == 0
    assert rows["relabel"].consistency.value == 1 and rows["relabel"].revas_rate.value == 0
    assert rows["relabel"].consistent_accuracy.value == pytest.approx(first_right)
    # NOTA is listed last, so the first option is a real one: consistent unless the gold was first.
    assert rows["nota"].consistency.value == pytest.approx(1 - first_right) and rows["nota"].accuracy.value == 0
    original = next(r for r in run.report.overall.variants if r.variant == "original")
    assert original.accuracy.value == pytest.approx(first_right) and original.accuracy.n == 20
    tf = run.report.overall.truefalse
    assert (tf.multiple_true.value, tf.gold_false.value, tf.none_true.value, tf.yes_rate.value) == (1, 0, 0, 1)
    assert tf.judgement_accuracy.value == pytest.approx(0.25) and tf.all_correct.value == 0
    assert set(run.report.groups["topic"]) == {"geography", "science", "math", "history"}


def test_an_oracle_is_right_and_consistent_everywhere_and_tables_are_written(tmp_path):
    model = CountingModel(OracleModel("oracle"))
    run = run_consistency(model, DEMO, tmp_path / "run", permutations=3, cache_path=tmp_path / "c.sqlite",
                          progress=False)
    for row in run.report.overall.families:
        values = (row.accuracy.value, row.consistency.value, row.consistent_accuracy.value, row.revas_rate.value)
        assert values == (1, 1, 1, 0), row.family
    assert all(r.accuracy.value == 1 for r in run.report.overall.variants)
    tf = run.report.overall.truefalse
    assert (tf.all_correct.value, tf.multiple_true.value, tf.gold_false.value, tf.mcq_accuracy.value) == (1, 0, 0, 1)
    names = {p.name for p in run.files}
    assert {"robustness.json", "robustness_variants.jsonl", "robustness_families.jsonl", "robustness_truefalse.jsonl",
            "robustness_items.jsonl", "robustness_variants.png", "robustness_families.png",
            "robustness_by_topic.png"} <= names
    items = [json.loads(line) for line in (run.run_dir / "robustness_items.jsonl").read_text().splitlines()]
    assert len(items) == 20 and all(len(i["answers"]) == 1 + 3 + 3 + 2 + 2 + 1 for i in items)
    families_table = [json.loads(line) for line in (run.run_dir / "robustness_families.jsonl").read_text().splitlines()]
    assert {row["group_key"] for row in families_table} == {None, "topic"}

    # Identical requests (a permutation equal to a rotation, say) reach the model once.
    asked = {r["key"] for record in RunDir(run.run_dir).records() for r in record.requests}
    assert len(model.sent) == len(set(model.sent)) == len(asked)
    sent = len(model.sent)
    again = run_consistency(model, DEMO, tmp_path / "run", permutations=3, cache_path=tmp_path / "c.sqlite",
                            progress=False)
    assert len(model.sent) == sent and again.requests_sent == 0
    assert json.dumps(again.report.to_dict()) == json.dumps(run.report.to_dict())
    with pytest.raises(ConfigError, match="holds a different run"):
        run_consistency(model, DEMO, tmp_path / "run", permutations=2, cache_path=tmp_path / "c.sqlite",
                        progress=False)


@pytest.mark.parametrize("num_fewshot", [0, 2])
def test_the_original_variant_builds_exactly_the_mmlu_requests(num_fewshot):
    task = get_task("mmlu", num_fewshot=num_fewshot)
    sources = select_samples(task.samples(), 6, "subject")
    original, rotate, relabel = variant_tasks(task, sources, ["rotate", "relabel"])
    assert original.name == "mmlu~original"
    for source, variant in zip(sources, original.samples()):
        assert original.requests(variant) == task.requests(source)
    for variant in rotate.samples()[:3] + relabel.samples()[:2]:
        requests = rotate.requests(variant) if variant.metadata["kind"] == "rotate" else relabel.requests(variant)
        source = next(s for s in sources if s.id == variant.source_id)
        prefix = task.requests(source)[0].context
        block = question_block(source.data["question"], source.data["choices"], ("A", "B", "C", "D"))
        labels = variant.metadata["labels"]
        shown = question_block(source.data["question"], variant.data["choices"], tuple(labels))
        assert requests == [LoglikelihoodRequest(prefix[: -len(block)] + shown, f" {label}") for label in labels]


def test_cloze_tasks_are_refused_with_a_clear_error():
    task = get_task("mmlu_cloze")
    with pytest.raises(ConfigError, match="variants need a letter-choice task"):
        variant_tasks(task, select_samples(task.samples(), 1, "subject"), ["rotate"])


def test_an_instruction_and_few_shot_prefix_is_kept_verbatim(tmp_path):
    path = tmp_path / "quiz.jsonl"
    rows = [{"question": f"Q{i}?", "choices": ["one", "two", "three"], "answer": i % 3} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = mcq(str(path), name="quiz", num_fewshot=1, instruction="Answer carefully.")
    original, nota = variant_tasks(task, task.samples(), ["nota"])
    for source, variant in zip(task.samples(), original.samples()):
        assert original.requests(variant) == task.requests(source)
    context = nota.requests(nota.samples()[0])[0].context
    assert context.startswith("Answer carefully.\n\nQ0?\nA. one") and context.endswith("C. None of the above\nAnswer:")


def test_records_without_variant_metadata_are_refused():
    plain = SampleRecord("mmlu", "x/1", 0, {"subject": "x"}, [], [], {})
    with pytest.raises(DataError, match="sample_id='x/1', field 'source_id'"):
        robustness_report([plain])


def test_unknown_variant_kinds_and_group_columns_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown variant kind"):
        variant_tasks(DEMO, DEMO.samples()[:1], ["rotate", "shuffle"])
    run = run_consistency(OracleModel("oracle"), DEMO, tmp_path / "run", variants=["rotate"], limit=2,
                          cache_path=tmp_path / "c.sqlite", progress=False)
    with pytest.raises(ConfigError, match="no record has the metadata column 'language'"):
        robustness_report(RunDir(run.run_dir).records(), ["language"])
