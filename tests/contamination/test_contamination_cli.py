"""`lmaudit contamination` as a user runs it: flags and manifest written, bad input answered in one line."""

import csv
import json

import pytest
from typer.testing import CliRunner

from lmaudit.cli.contamination import app

runner = CliRunner()


def test_substring_scan_writes_flags_and_manifest(dirty_corpus, tmp_path):
    folder, injections = dirty_corpus
    output = tmp_path / "out" / "flags.jsonl"
    result = runner.invoke(app, ["--tasks", "mmlu", "--corpus", str(folder / "*.jsonl*"), "--corpus", str(folder),
                                 "--method", "substring", "--workers", "2", "--output-dir", str(tmp_path / "out"),
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 14042 and {r["sample_id"] for r in rows if r["contaminated"]} >= {
        inj.item.sample_id for inj in injections}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())["invocations"][-1]["scan"]
    assert manifest["method"] == "substring" and manifest["params"]["length"] == 50
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    contaminated = next(r for r in results["metrics"] if r["metric"] == "items_contaminated")
    assert results["kind"] == "contamination" and contaminated["value"] == sum(r["contaminated"] is True for r in rows)
    assert len(manifest["corpus"]) == 11 and manifest["stats"]["documents"] > 18000
    assert "MB/s" in result.output and "contaminated" in result.output


@pytest.mark.parametrize("args,message", [
    (["--corpus", "/nonexistent/*.jsonl"], "corpus glob '/nonexistent/*.jsonl' matches no file"),
    (["--method", "exact", "--corpus", "x"], "unknown method 'exact'"),
    (["--method", "substring"], "give the training data with --corpus"),
    (["--method", "mink"], "--method mink needs --model"),
    (["--tasks", "mmlu_nope", "--corpus", "x"], "unknown task 'mmlu_nope'"),
    (["--method", "substring", "--corpus", "x", "--model", "smollm2"], "are for --method mink"),
])
def test_bad_input_is_one_clear_error(args, message, tmp_path):
    result = runner.invoke(app, args + ["--output-dir", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


@pytest.mark.slow
def test_mink_against_unseen_text(data_dir, tmp_path, one_torch_thread):
    with open(data_dir / "arxiv" / "arxiv_data_3397_clopezvice.csv", encoding="utf-8") as handle:
        abstracts = [row["abstract"].replace("\n", " ") for row in csv.DictReader(handle)][:40]
    (tmp_path / "after-cutoff.txt").write_text("\n".join(abstracts) + "\n", encoding="utf-8")
    output = tmp_path / "mink" / "flags.jsonl"
    result = runner.invoke(app, ["--tasks", "mmlu", "--method", "mink", "--model", "smollm2", "--limit", "2",
                                 "--nonmembers", str(tmp_path / "after-cutoff.txt"), "--output-dir",
                                 str(tmp_path / "mink"), "--private-cache", "--quiet"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 2 and all(r["method"] == "mink" and r["score"] < 0 and r["contaminated"] is None
                                  for r in rows)
    assert "AUROC items vs length-matched non-member excerpts (2 each)" in " ".join(result.output.split())
