"""The whole pipeline on a tiny model, through the CLI: mix, two training runs, three evaluations, Min-K%, the
scans, the table and the figure; resumed without repeating work; errors as one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from leakage_helpers import CONTROL, LEAKED, QUESTIONS, leakage_argv

from lmaudit.cli.main import main
from lmaudit.leakage.run import TABLE_COLUMNS
from lmaudit.runner import RunDir


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def _rows(results: dict, metric: str) -> dict[tuple[str, str], dict]:
    return {(r["task"], r["group"]): r for r in results["metrics"] if r["metric"] == metric}


def test_the_run_measures_every_model_subset_and_detector(answers_run):
    results = _results(answers_run)
    assert results["kind"] == "leakage" and results["config"]["setting"] == "answers"
    acc = _rows(results, "acc")
    assert set(acc) == {(m, f"subset={s}") for m in ("base", "clean", "leak") for s in ("leaked", "heldout")}
    assert all(row["n"] == QUESTIONS for row in acc.values())
    gains = _rows(results, "acc_diff")
    assert set(gains) == {(p, f"subset={s}") for p in ("leak-clean", "leak-base", "clean-base")
                          for s in ("leaked", "heldout")}
    for (pair, group), row in gains.items():
        first, second = pair.split("-")
        assert row["value"] == pytest.approx(acc[(first, group)]["value"] - acc[(second, group)]["value"])
        assert row["ci95"][0] <= row["value"] <= row["ci95"][1]
    assert set(_rows(results, "ece")) == set(acc) and set(_rows(results, "mink_auroc")) == {
        (m, "subset=leaked") for m in ("base", "clean", "leak")}
    recall = _rows(results, "scan_recall")
    for method in ("substring", "ngram"):
        assert recall[(method, "subset=leaked")]["value"] == 1.0  # every leaked question is found in the mix
        assert _rows(results, "scan_false_positive_rate")[(method, "subset=not-in-mix")]["value"] == 0.0
    split = _rows(results, "split_acc")
    assert split[("leak", "flags=contaminated")]["n"] == QUESTIONS and split[("leak", "flags=clean")]["n"] == QUESTIONS
    assert results["mixes"]["clean"]["leak_windows"] == 0 < results["mixes"]["leak"]["leak_windows"]


def test_per_question_records_the_table_and_the_figure(answers_run):
    records = RunDir(answers_run).records()
    assert len(records) == 2 * QUESTIONS
    assert {r.metadata["subset"] for r in records if r.task == f"mmlu_{LEAKED}"} == {"leaked"}
    assert {r.metadata["subset"] for r in records if r.task == f"mmlu_{CONTROL}"} == {"heldout"}
    evaluated = {(r.task, r.sample_id): r.scores["acc"] for r in RunDir(answers_run / "eval" / "leak").records()}
    assert {(r.task, r.sample_id): r.scores["acc_leak"] for r in records} == evaluated
    assert all(r.scores["copies"] > 0 for r in records if r.metadata["subset"] == "leaked")
    with open(answers_run / "leakage.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == TABLE_COLUMNS and len(table) == len(_results(answers_run)["metrics"])
    png = (answers_run / "leakage.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_training_on_the_leak_makes_those_questions_likelier(answers_run):
    """The leak-trained model's Min-K% scores rise more on the questions it saw than on the held-out ones."""
    records = RunDir(answers_run).records()
    shift = {subset: np.mean([r.scores["mink_leak"] - r.scores["mink_base"] for r in records
                              if r.metadata["subset"] == subset]) for subset in ("leaked", "heldout")}
    clean_shift = {subset: np.mean([r.scores["mink_clean"] - r.scores["mink_base"] for r in records
                                    if r.metadata["subset"] == subset]) for subset in ("leaked", "heldout")}
    assert shift["leaked"] - shift["heldout"] > clean_shift["leaked"] - clean_shift["heldout"] + 0.1
    assert _rows(_results(answers_run), "mink_shift_auroc")[("leak-base", "subset=leaked")]["value"] > 0.8


def test_a_rerun_reuses_the_training_and_every_model_answer(answers_run, tiny_model_dir):
    trained = {path: path.stat().st_mtime_ns for path in (answers_run / "train").glob("*/run.json")}
    before = (answers_run / "results.json").read_bytes()
    assert main(leakage_argv(tiny_model_dir, answers_run)) == 0
    assert {path: path.stat().st_mtime_ns for path in (answers_run / "train").glob("*/run.json")} == trained
    for kind in ("eval", "mink"):
        for manifest in (answers_run / kind).glob("*/manifest.json"):
            last = json.loads(manifest.read_text())["invocations"][-1]
            assert last["requests_sent"] == {"target": 0}, manifest
    assert (answers_run / "results.json").read_bytes() == before
    assert len(RunDir(answers_run).records()) == 2 * QUESTIONS


def test_eval_contamination_splits_the_leaked_model_with_the_run_flags(answers_run, tmp_path):
    leak_model = next((answers_run / "train").glob("leak-*"))
    out = tmp_path / "eval"
    argv = ["eval", "--model", f"hf:{leak_model}", "--tasks", f"mmlu_{LEAKED},mmlu_{CONTROL}", "--limit",
            str(QUESTIONS), "--contamination", str(answers_run / "flags" / "substring.jsonl"), "--output-dir",
            str(out), "--private-cache", "--quiet"]
    assert main(argv) == 0
    report = json.loads((out / "contamination.json").read_text())["tasks"]
    assert report[f"mmlu_{LEAKED}"]["counts"]["contaminated"] == QUESTIONS
    assert report[f"mmlu_{CONTROL}"]["counts"]["clean"] == QUESTIONS


def test_the_train_setting_scores_unseen_questions_of_the_leaked_subject(tiny_model_dir, tmp_path):
    out = tmp_path / "train-setting"
    assert main(leakage_argv(tiny_model_dir, out, "--setting", "train", "--steps", "8")) == 0
    results = _results(out)
    acc = _rows(results, "acc")
    assert acc[("leak", "subset=leaked")]["n"] == acc[("leak", "subset=unseen")]["n"] == QUESTIONS // 2
    flags = [json.loads(line) for line in (out / "flags" / "substring.jsonl").read_text().splitlines()]
    unseen = {r.sample_id for r in RunDir(out).records() if r.metadata["subset"] == "unseen"}
    assert unseen and not any(f["contaminated"] for f in flags if f["sample_id"] in unseen)
    assert ("leak", "subset=unseen") in _rows(results, "mink_auroc")


@pytest.mark.parametrize("extra,message", [
    (["--leak", "mmlu:global_fact"], "Did you mean 'global_facts'"),
    (["--leak", "gsm8k:main"], "--leak takes mmlu:SUBJECT"),
    (["--leak", "mmlu:global_facts", "--control", "mmlu:global_facts"], "both leaked and kept out"),
    (["--leak", "mmlu:global_facts", "--setting", "answer"], "Did you mean 'answers'"),
    (["--leak", "mmlu:global_facts", "--model", "hff:x"], "unknown model spec prefix 'hff'"),
    (["--leak", "mmlu:global_facts", "--clean-corpus", "/no/such/file.txt"], "does not exist"),
])
def test_bad_input_is_one_line_before_the_model_loads(extra, message, capsys, tmp_path):
    code = main(["leakage", "run", "--output-dir", str(tmp_path / "x"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "loading model" not in err and "Traceback" not in err
