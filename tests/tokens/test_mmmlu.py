"""MMMLU tasks on a fixture in the release's exact schema: local folder, hub-style folder, errors, a real eval."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lmaudit.core.errors import DataError, RowError
from lmaudit.tasks import get_task

FIXTURE = Path(__file__).resolve().parent  # holds mmmlu/test/mmlu_<LOCALE>.csv


def test_one_locale_from_a_local_folder():
    task = get_task("mmmlu_de_de", data_dir=str(FIXTURE))
    samples = task.samples()
    assert len(samples) == 6 and task.group_by == ("subject", "category")
    first = samples[0]
    assert first.metadata == {"language": "deu_Latn", "locale": "DE_DE", "subject": "elementary_mathematics",
                              "category": "stem"}
    context = task.requests(first)[0].context
    assert context.startswith("The following are multiple choice questions (with answers) about elementary "
                              "mathematics.") and "Was ist 7 mal 8?\nA. 54\nB. 56" in context and context.endswith("Answer:")
    assert first.target == 1
    assert str(FIXTURE / "mmmlu" / "test" / "mmlu_DE-DE.csv") in task.config()["data_files"]


def test_few_shot_examples_come_from_the_same_subject_and_are_not_scored():
    task = get_task("mmmlu_sw_ke", data_dir=str(FIXTURE), num_fewshot=1)
    samples = task.samples()
    assert len(samples) == 4  # the first question of each of the two subjects became the shot
    context = task.requests(samples[0])[0].context
    assert "Saba mara nane ni ngapi?\nA. 54\nB. 56\nC. 64\nD. 48\nAnswer: B\n\n" in context


def test_all_locales_need_every_file():
    with pytest.raises(DataError, match=r"MMMLU file missing: .*mmlu_AR-XY\.csv"):
        get_task("mmmlu", data_dir=str(FIXTURE)).samples()


def test_a_bad_answer_names_file_line_and_field(tmp_path):
    folder = tmp_path / "mmmlu"
    folder.mkdir()
    (folder / "mmlu_FR-FR.csv").write_text("Question,A,B,C,D,Answer,Subject\nQ,a,b,c,d,E,anatomy\n", encoding="utf-8")
    with pytest.raises(RowError, match=r"mmlu_FR-FR\.csv, line 2, field 'Answer': expected A-D, got 'E'"):
        get_task("mmmlu_fr_fr", data_dir=str(tmp_path)).samples()


@pytest.mark.slow
def test_a_hub_style_dataset_loads_the_same_questions(tmp_path):
    """dataset=<id> goes through the datasets library (the by_language configuration); a folder laid out like the
    hub repository stands in for openai/MMMLU, which these machines cannot reach."""
    hub = tmp_path / "MMMLU"
    shutil.copytree(FIXTURE / "mmmlu", hub)
    local = get_task("mmmlu_hi_in", data_dir=str(FIXTURE)).samples()
    remote = get_task("mmmlu_hi_in", dataset=str(hub)).samples()
    assert [(s.data["question"], s.target) for s in remote] == [(s.data["question"], s.target) for s in local]


@pytest.mark.slow
def test_an_eval_run_of_three_locales_feeds_vs_accuracy(smollm2, tmp_path):
    from lmaudit.runner import evaluate
    from lmaudit.tokens.accuracy import run_scores

    tasks = [get_task(f"mmmlu_{locale}", data_dir=str(FIXTURE)) for locale in ("de_de", "sw_ke", "hi_in")]
    result = evaluate(smollm2, tasks, tmp_path / "eval", shared_cache=False, progress=False)
    scores = run_scores(result.run_dir)
    assert set(scores) == {"deu_Latn", "swh_Latn", "hin_Deva"}
    assert all(0 <= value <= 100 for value in scores.values())
    accuracy = result.results["tasks"]["mmmlu_de_de"]["metrics"]["acc"]["value"]
    assert scores["deu_Latn"] == pytest.approx(100 * accuracy)
