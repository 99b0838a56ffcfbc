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


def test_config_is_complete_before_samples_run(data_dir):
    # A resumed run compares config() before loading anything: it must not depend on samples() having run.
    task = mmlu(num_fewshot=5)
    before = task.config()
    assert len(before["data_files"]) == 2 * 57 and before["source"] == "local"
    task.samples()
    assert task.config() == before
    zero_shot = get_task("mmlu_anatomy").config()
    assert list(zero_shot["data_files"]) == [str(data_dir / "mmlu" / "test" / "anatomy_test.csv")]


def test_shipped_sample_is_the_real_dev_split_and_first_test_questions(data_dir):
    from lmaudit.tasks.mmlu import SHIPPED, SHIPPED_TEST_PER_SUBJECT, _parse_csv

    assert "MIT License" in (SHIPPED / "LICENSE").read_text() and "Dan Hendrycks" in (SHIPPED / "LICENSE").read_text()
    for subject in SUBJECTS:
        for split in ("dev", "test"):
            real = _parse_csv(data_dir / "mmlu" / split / f"{subject}_{split}.csv")
            shipped = _parse_csv(SHIPPED / split / f"{subject}_{split}.csv")
            assert shipped == (real if split == "dev" else real[:SHIPPED_TEST_PER_SUBJECT]), (subject, split)
    assert len(list((SHIPPED / "test").glob("*_test.csv"))) == 57


def test_no_data_folder_falls_back_to_the_shipped_sample(monkeypatch, tmp_path):
    from lmaudit.tasks.mmlu import SHIPPED, ShippedSampleWarning

    monkeypatch.delenv("LMAUDIT_DATA_DIR", raising=False)
    with pytest.warns(ShippedSampleWarning, match=r"no data folder is set .*first 10 test questions of each subject"):
        task = mmlu(num_fewshot=5)
    config = task.config()
    assert config["source"] == "shipped" and len(config["data_files"]) == 114
    assert all(SHIPPED.as_posix() in path for path in config["data_files"])
    samples = task.samples()
    assert len(samples) == 570 and {s.metadata["subject"] for s in samples} == set(SUBJECTS)
    assert task.requests(samples[0])[0].context.count("\nAnswer:") == 6
    assert mmlu(data_source="shipped").config()["source"] == "shipped"
    # a data folder the user set (--data-dir or $LMAUDIT_DATA_DIR), or data_source=local, must hold MMLU
    with pytest.raises(DataError, match=f"looked in: {tmp_path / 'mmlu'}"):
        mmlu(data_dir=str(tmp_path))
    monkeypatch.setenv("LMAUDIT_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=f"looked in: {tmp_path / 'mmlu'}"):
        mmlu()
    monkeypatch.delenv("LMAUDIT_DATA_DIR")
    with pytest.raises(DataError, match=r"MMLU data not found; looked in: nowhere"):
        mmlu(data_source="local")
