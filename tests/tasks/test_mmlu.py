import pytest

from lmaudit.core.errors import DataError, RowError
from lmaudit.tasks import get_task
from lmaudit.tasks.mmlu import SUBJECTS, mmlu


def test_all_subjects_and_question_count(data_dir):
    samples = mmlu().samples()
    assert len(SUBJECTS) == 57
    assert len(samples) == 14042
    assert {s.metadata["category"] for s in samples} == {"stem", "humanities", "social_sciences", "other"}


def test_zero_shot_prompt_is_the_standard_format(data_dir):
    task = get_task("mmlu_abstract_algebra")
    sample = task.samples()[0]
    context = task.requests(sample)[0].context
    assert context == (
        "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
        "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\n"
        "A. 0\nB. 4\nC. 2\nD. 6\nAnswer:")
    assert [r.continuation for r in task.requests(sample)] == [" A", " B", " C", " D"]
    assert sample.target == 1


def test_five_shot_prompt_uses_the_dev_examples_in_order(data_dir):
    task = get_task("mmlu_anatomy", num_fewshot=5)
    context = task.requests(task.samples()[0])[0].context
    assert context.count("\nAnswer:") == 6
    assert context.startswith("The following are multiple choice questions (with answers) about anatomy.\n\n")
    shots = context.split("\n\n")[1:6]
    assert all(shot.rsplit("Answer: ", 1)[1] in "ABCD" for shot in shots)


def test_cloze_variant_scores_answer_texts(data_dir):
    task = get_task("mmlu_cloze", subjects=["anatomy"])
    sample = task.samples()[0]
    requests = task.requests(sample)
    assert requests[0].context.endswith(f"Question: {sample.data['question'].strip()}\nAnswer:")
    assert [r.continuation for r in requests] == [" " + c for c in sample.data["choices"]]
    assert task.metrics == ("acc", "acc_norm", "acc_bytes")


def test_original_release_layout_and_bad_answer(tmp_path):
    test = tmp_path / "mmlu" / "test"
    test.mkdir(parents=True)
    (test / "anatomy_test.csv").write_text('What is 1+1?,1,2,3,4,B\n"Two, please",a,b,c,d,A\n')
    samples = mmlu(data_dir=str(tmp_path), subjects=["anatomy"]).samples()
    assert [s.target for s in samples] == [1, 0] and samples[1].data["question"] == "Two, please"
    (test / "anatomy_test.csv").write_text("What is 1+1?,1,2,3,4,B\nBroken?,1,2,3,4,E\n")
    with pytest.raises(RowError, match=r"anatomy_test.csv, line 2, field 'answer'"):
        mmlu(data_dir=str(tmp_path), subjects=["anatomy"]).samples()


def test_fewshot_out_of_range_and_unknown_subject(data_dir):
    with pytest.raises(DataError, match="num_fewshot=6"):
        mmlu(num_fewshot=6)
    with pytest.raises(DataError, match="unknown MMLU subject"):
        mmlu(subjects=["astrology"])
