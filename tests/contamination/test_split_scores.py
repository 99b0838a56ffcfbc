"""Full / clean / contaminated scores of a real run whose items were partly found in a scanned corpus."""

import random

import numpy as np
import pytest
from rich.console import Console

from lmaudit.cli.contamination import split_table
from lmaudit.contamination import items_from_tasks, read_flags, scan_corpus, split_scores, write_flags
from lmaudit.contamination.normalize import normalize
from lmaudit.core.errors import ConfigError
from lmaudit.runner import RunDir, evaluate
from lmaudit.tasks import get_task

pytestmark = pytest.mark.slow


def test_split_scores_on_a_real_run(smollm2, make_corpus, tmp_path, one_torch_thread):
    # Subjects with short questions keep the run quick on a loaded CPU; it is still the task named "mmlu".
    task = get_task("mmlu", subjects=["abstract_algebra", "anatomy", "college_mathematics", "global_facts",
                                      "management", "marketing", "nutrition", "virology", "sociology", "prehistory"])
    run = evaluate(smollm2, [task], tmp_path / "run", limit=20, cache_path=tmp_path / "cache.sqlite",
                   progress=False, seed=0)
    records = RunDir(run.run_dir).records()
    assert len(records) == 20

    items = items_from_tasks([task], limit=20)
    assert {i.key for i in items} == {(r.task, r.sample_id) for r in records}  # the same 20 samples
    checkable = [i for i in items if len(normalize(i.text)) >= 20]
    leaked = random.Random(5).sample(checkable, 7)
    make_corpus(tmp_path / "corpus", leaked, 5)
    flags_path = write_flags(scan_corpus(items, [tmp_path / "corpus"], progress=False).flags,
                             tmp_path / "flags.jsonl")
    flags = read_flags(flags_path)
    verdict = {key: flag.contaminated for key, flag in flags.items()}
    assert {key for key, v in verdict.items() if v} == {i.key for i in leaked}

    split = split_scores(records, flags_path, task.metrics, task.group_by, seed=0)
    unchecked = sum(v is None for v in verdict.values())
    assert split["counts"] == {"full": 20, "clean": 13 - unchecked, "contaminated": 7, "unchecked": unchecked}
    assert split["methods"] == ["substring"]
    by_subset = {
        "full": [r.scores["acc"] for r in records],
        "clean": [r.scores["acc"] for r in records if verdict[(r.task, r.sample_id)] is False],
        "contaminated": [r.scores["acc"] for r in records if verdict[(r.task, r.sample_id)] is True],
    }
    for name, values in by_subset.items():
        summary = split["subsets"][name]["metrics"]["acc"]
        assert summary["n"] == len(values) and summary["value"] == pytest.approx(np.mean(values))
    full, clean = np.mean(by_subset["full"]), np.mean(by_subset["clean"])
    assert split["reported"]["acc"]["value"] == pytest.approx(min(full, clean))
    assert split["reported"]["acc"]["subset"] == ("clean" if clean < full else "full")
    assert split["contaminated_fraction"] == pytest.approx(7 / (20 - unchecked))
    # Groups come through too: every subject of the contaminated items has a contaminated breakdown.
    assert set(split["subsets"]["contaminated"]["groups"]["subject"]) == {i.sample_id.split("/")[0] for i in leaked}

    console = Console(width=160, record=True)
    console.print(split_table("mmlu", split))
    text = console.export_text()
    assert "full (n=20)" in text and "contaminated (n=7)" in text and f"{min(full, clean):.4f}" in text

    with pytest.raises(ConfigError, match="no row for task"):
        split_scores(records, {}, task.metrics)


def test_eval_command_reports_clean_and_contaminated_scores(smollm2, make_corpus, tmp_path, one_torch_thread):
    """`lmaudit eval --contamination FLAGS` prints the split and writes contamination.json beside results."""
    import json
    import subprocess
    import sys

    subjects = ["abstract_algebra", "anatomy", "global_facts", "management"]
    task = get_task("mmlu", subjects=subjects)
    evaluate(smollm2, [task], tmp_path / "run", limit=8, cache_path=tmp_path / "cache.sqlite", progress=False)
    items = items_from_tasks([task], limit=8)
    leaked = [i for i in items if len(normalize(i.text)) >= 20][:3]
    make_corpus(tmp_path / "corpus", leaked, 1)
    flags_path = write_flags(scan_corpus(items, [tmp_path / "corpus"], progress=False).flags, tmp_path / "flags.jsonl")

    # Same settings as the run above, so the command resumes it without a model call and adds the split.
    command = [sys.executable, "-m", "lmaudit", "eval", "--model", "smollm2", "--tasks", "mmlu", "--task-arg",
               "subjects=" + "|".join(subjects), "--limit", "8", "--output-dir", str(tmp_path / "run"),
               "--cache", str(tmp_path / "cache.sqlite"), "--contamination", str(flags_path), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "contaminated (n=3)" in done.stdout and "model requests sent: 0" in done.stderr.replace("\n", " ")
    report = json.loads((tmp_path / "run" / "contamination.json").read_text())
    assert report["tasks"]["mmlu"]["counts"]["contaminated"] == 3
