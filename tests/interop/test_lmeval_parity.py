"""Same numbers as lm-evaluation-harness on the same weights: per-choice log-likelihoods and accuracy."""

import pytest

from lmaudit.interop.lmeval import results_by_question, run_lmeval_mmlu
from lmaudit.runner import RunDir, evaluate
from lmaudit.tasks.mmlu import mmlu

pytestmark = pytest.mark.slow
SUBJECTS = ["astronomy", "high_school_geography"]


@pytest.mark.parametrize("shots", [0, 5])
def test_matches_lmeval(smollm2, tmp_path, data_dir, shots):
    task = mmlu(num_fewshot=shots, subjects=SUBJECTS)
    result = evaluate(smollm2, [task], tmp_path / "run", limit=6, cache_path=tmp_path / "c.sqlite", progress=False)
    ours = results_by_question(RunDir(tmp_path / "run").records())
    assert sorted(ours) == [(s, i) for s in SUBJECTS for i in range(3)]  # limit 6 = first 3 of each subject
    theirs = run_lmeval_mmlu(smollm2.module.name_or_path, SUBJECTS, num_fewshot=shots, limit=3)
    for key, lls in ours.items():
        assert lls == pytest.approx([ll for ll, _ in theirs.loglikelihoods[key]], abs=1e-4)
    their_acc = sum(theirs.accuracy.values()) / len(theirs.accuracy)
    assert result.results["tasks"]["mmlu"]["metrics"]["acc"]["value"] == pytest.approx(their_acc, abs=1e-12)
