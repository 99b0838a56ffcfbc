"""`lmaudit tokens`: a real run directory, resumption, and one clear line (exit 2) for each kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def lmaudit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lmaudit", "tokens", *args], capture_output=True, text=True,
                          timeout=600)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in done.stderr
    return lines[0]


def test_premium_writes_a_run_directory_and_resumes(tmp_path, tokenizer_dir):
    args = ["premium", "--tokenizers", f"cl100k_base,hf:{tokenizer_dir / 'llama2_spm' / 'tokenizer.model'}", "--langs", "deu_Latn,amh_Ethi",
            "--max-sentences", "200", "--output-dir", str(tmp_path / "run"), "--quiet"]
    done = lmaudit(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    folder = tmp_path / "run"
    assert {"manifest.json", "samples.jsonl", "results.json", "tokens.csv", "tokens.parquet", "premiums.png"} <= {
        p.name for p in folder.iterdir()}
    results = json.loads((folder / "results.json").read_text())
    assert results["kind"] == "tokens" and results["reference"] == "eng_Latn" and results["sentences"] == 200
    premium = {(m["task"], m["group"]): m for m in results["metrics"] if m["metric"] == "premium"}
    assert premium[("tiktoken:cl100k_base", "language=amh_Ethi")]["value"] > 5
    header = (folder / "tokens.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["language", "name", "script", "tokenizer", "tokens", "chars"]
    again = lmaudit(*args)
    assert again.returncode == 0 and "tokenizers counted now: 0, resumed: 2" in again.stderr
    assert json.loads((folder / "results.json").read_text()) == results
    different = lmaudit(*args[:-3], "--seed", "3", "--output-dir", str(folder), "--quiet")
    assert "holds a different run (differs in: seed)" in one_error_line(different)


def test_cost_with_the_shipped_prices(tmp_path, data_dir):
    done = lmaudit("cost", "--models", "gpt-4o-mini", "--langs", "hin_Deva", "--max-sentences", "100",
                   "--output-dir", str(tmp_path / "cost"), "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "gpt-4o-mini" in done.stdout and (tmp_path / "cost" / "cost.parquet").is_file()


@pytest.mark.parametrize("args, expected", [
    (["premium", "--tokenizers", "cl100k"], "unknown tokenizer"),
    (["premium", "--langs", "deu_Latn", "--reference", "xyz_Latn"], "unknown language of corpus flores200 'xyz_Latn'"),
    (["cost", "--prices", "PRICES_WITHOUT_MODEL"], "defines no model"),
    (["premium", "--corpus", "UNALIGNED"], "b.txt has 1 lines, but the other files"),
])
def test_bad_input_is_one_line(args, expected, tmp_path, data_dir):
    prices = tmp_path / "prices.toml"
    prices.write_text('date = "2024-10-01"\nsource = "mine"\n', encoding="utf-8")
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in (("a.txt", "1\n2\n"), ("b.txt", "1"), ("c.txt", "1\n2\n")):
        (folder / name).write_text(text, encoding="utf-8")
    args = [str(prices) if a == "PRICES_WITHOUT_MODEL" else str(folder) if a == "UNALIGNED" else a for a in args]
    assert expected in one_error_line(lmaudit(*args))
