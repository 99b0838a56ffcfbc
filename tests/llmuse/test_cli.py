"""`lmaudit llmuse estimate|validate|excess` end to end on real abstracts, and bad input as one line, exit 2."""

import csv
import json

import pytest
from typer.testing import CliRunner

from lmaudit.cli.main import app
from lmaudit.core.results import read_envelope

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, ["llmuse", *map(str, args)])


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def test_estimate_per_group_and_period_writes_tables_plot_and_results(real_reference, real_target, tmp_path):
    target, n_new = real_target
    out = tmp_path / "run"
    _ok(_run("estimate", "--reference", real_reference, "--target", target, "--text-column", "abstract",
             "--group-column", "category", "--group-prefix", "--date-column", "date", "--period", "year",
             "--resamples", 100, "--output-dir", out))
    for name in ("vocabulary.csv", "estimates.csv", "estimates.png", "results.json", "manifest.json"):
        assert (out / name).is_file()
    results = json.loads((out / "results.json").read_text())
    kind, metrics = read_envelope(results, "results.json")
    assert kind == "llmuse" and results["command"] == "estimate"
    share = {m.group: m for m in metrics if m.metric == "llm_share"}
    assert set(share) == {None, "group=cs", "group=math", "period=2020", "period=2025", "group=cs,period=2020",
                          "group=math,period=2025"}
    assert share["group=math"].value > 0.8 and share["group=cs"].value < 0.1  # the 2025 texts play Q here
    low, high = share[None].ci95
    assert low < share[None].value < high and 0.1 < share[None].value < 0.35
    refs = results["references"]
    assert refs["human_sentences"] > 3000 and refs["ai_sentences"] > 2000 and refs["vocabulary_size"] > 500
    with open(out / "vocabulary.csv") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == refs["vocabulary_size"] and float(table[0]["log_odds_ratio"]) > 0
    shown = runner.invoke(app, ["show", str(out)])
    assert shown.exit_code == 0 and "llm_share" in shown.output and "anchor_midpoint" in shown.output
    # the same command again resumes the same directory; other settings are refused
    _ok(_run("estimate", "--reference", real_reference, "--target", target, "--text-column", "abstract",
             "--group-column", "category", "--group-prefix", "--date-column", "date", "--period", "year",
             "--resamples", 100, "--output-dir", out))
    refused = _run("estimate", "--reference", real_reference, "--target", target, "--text-column", "abstract",
                   "--resamples", 100, "--output-dir", out)
    assert refused.exit_code == 2 and "holds a different run" in refused.output


@pytest.mark.parametrize("extra, message", [
    (["--min-human", 100000], "no vocabulary left"),
    (["--group-column", "category", "--groups", "['cs.XX']"], "have no documents"),
    (["--text-column", "summary"], "field 'summary': no such column"),
    (["--corpus", "x.jsonl"], "one of them"),
    (["--vocabulary", "adjective"], "Did you mean 'adjectives'"),
])
def test_bad_input_is_one_line_and_exit_2(real_reference, real_target, tmp_path, extra, message):
    target, _ = real_target
    args = ["estimate", "--reference", real_reference, "--target", target, "--resamples", 50,
            "--output-dir", tmp_path / "bad"]
    if "--text-column" not in extra:
        args += ["--text-column", "abstract"]
    result = _run(*args, *extra)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 3  # the error line (wrapped at most once) and no trace


def test_estimate_on_a_sharded_corpus(real_reference, abstracts, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for part in range(2):
        rows = [{"text": t, "venue": "A" if i % 2 else "B"} for i, t in
                enumerate(abstracts["old"][800 + 60 * part:860 + 60 * part])]
        (corpus / f"part{part}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    _ok(_run("estimate", "--reference", real_reference, "--corpus", corpus, "--group-field", "venue", "--workers",
             2, "--resamples", 60, "--output-dir", out))
    results = json.loads((out / "results.json").read_text())
    assert {r["group"] for r in results["strata"]} == {"all", "A", "B"}
    assert all(r["alpha"] < 0.1 for r in results["strata"])  # older abstracts only: little of "Q" here


def test_validate_on_held_out_text_and_on_simulated_corpora(real_reference, tmp_path):
    out = tmp_path / "heldout"
    result = _ok(_run("validate", "--reference", real_reference, "--shares", "0,0.2", "--mixtures", 3,
                      "--resamples", 40, "--output-dir", out))
    assert "max |error|" in result.output
    rows = list(csv.DictReader(open(out / "validation.csv")))
    assert [float(r["share"]) for r in rows] == [0.0, 0.2] and (out / "validation.png").is_file()
    assert abs(float(rows[1]["mean_alpha"]) - 0.2) < 0.05
    results = json.loads((out / "results.json").read_text())
    assert results["heldout_sentences"]["ai"] > 400 and "max_abs_error" in results["headline"]
    sim = tmp_path / "sim"
    _ok(_run("validate", "--simulate", "--words", 300, "--n-human", 3000, "--n-ai", 3000, "--n-target", 1500,
             "--shift", 0.6, "--shares", "0.1", "--mixtures", 3, "--resamples", 40, "--output-dir", sim))
    assert json.loads((sim / "results.json").read_text())["simulation"]["words"] == 300
    both = _run("validate", "--simulate", "--reference", real_reference, "--output-dir", tmp_path / "x")
    assert both.exit_code == 2 and "one of them" in both.output


def test_excess_between_two_files_and_between_periods_of_one(arxiv, tmp_path):
    out = tmp_path / "files"
    _ok(_run("excess", "--reference", arxiv["old"], "--reference-text-column", "summaries", "--target",
             arxiv["new"], "--text-column", "abstract", "--resamples", 100, "--output-dir", out))
    for name in ("excess_words.csv", "excess.png", "results.json"):
        assert (out / name).is_file()
    words = list(csv.DictReader(open(out / "excess_words.csv")))
    assert len(words) == 100 and words[0]["excess"] == "True"  # math vocabulary dominates this comparison
    dated = tmp_path / "dated.csv"
    with open(dated, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "date"])
        writer.writeheader()
        old = [r["summaries"] for r in csv.DictReader(open(arxiv["old"]))][:400]
        writer.writerows([{"text": t, "date": "2021-06-01" if i < 200 else "2022-06-01"} for i, t in enumerate(old)])
    run = tmp_path / "periods"
    _ok(_run("excess", "--target", dated, "--date-column", "date", "--reference-period", 2021, "--target-period",
             2022, "--resamples", 100, "--output-dir", run))
    summary = json.loads((run / "results.json").read_text())["groups"]["all"]
    assert summary["ci"]["low"] <= 0.0 + 1e-9 or summary["lower_bound"] < 0.05  # same collection: no jump
    missing = _run("excess", "--target", dated, "--date-column", "date", "--reference-period", 2019,
                   "--target-period", 2022, "--output-dir", tmp_path / "m")
    assert missing.exit_code == 2 and "no documents in the reference period" in missing.output
