"""Corpora, the tokenizer, and the runs / pass-rate tables with their row-level errors."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest

from lmaudit.core.errors import DataError, RowError
from lmaudit.scaling.corpus import load_corpus, stdlib_files
from lmaudit.scaling.runs import CurvePoint, RunRecord, read_pass_rates, read_runs, write_runs


def test_stdlib_files_are_sorted_library_source():
    root = Path(sysconfig.get_paths()["stdlib"])
    files = stdlib_files()
    names = [f.relative_to(root).as_posix() for f in files]
    assert names == sorted(names)
    assert "json/decoder.py" in names and "os.py" in names
    assert not any(part in {"test", "tests", "site-packages"} for n in names for part in n.split("/")[:-1])


def test_default_corpus_split_is_deterministic_and_disjoint():
    first, second = load_corpus(), load_corpus()
    assert first.fingerprint() == second.fingerprint()
    train_ids = {d.id for d in first.train}
    heldout_ids = {d.id for d in first.heldout}
    assert not train_ids & heldout_ids
    share = len(heldout_ids) / (len(train_ids) + len(heldout_ids))
    assert 0.02 < share < 0.1


def test_user_corpora(tmp_path):
    text = tmp_path / "book.txt"
    text.write_text("\n\n".join(f"Paragraph {i} about scaling." for i in range(60)))
    corpus = load_corpus(text, heldout_fraction=0.2)
    assert len(corpus.train) + len(corpus.heldout) == 60

    table = tmp_path / "docs.jsonl"
    table.write_text("\n".join(json.dumps({"text": f"document {i}"}) for i in range(40)) + "\n")
    assert len(load_corpus(table, heldout_fraction=0.2).heldout) > 0
    table.write_text(json.dumps({"text": "ok"}) + "\n" + json.dumps({"body": "no text"}) + "\n")
    with pytest.raises(RowError, match="line 2, field 'text'"):
        load_corpus(table)
    with pytest.raises(DataError, match="not found"):
        load_corpus(tmp_path / "missing")


def test_tokenizer_round_trips_and_loads_with_transformers(tmp_path):
    from transformers import AutoTokenizer

    from lmaudit.scaling.tokenizer import train_tokenizer

    texts = [d.text for d in load_corpus(Path(sysconfig.get_paths()["stdlib"]) / "json").train]
    tokenizer = train_tokenizer(texts, vocab_size=400)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    sample = "def f(x):\n    return {'ключ': x ** 2}  # ünïcode\n"
    ids = loaded.encode(sample)
    assert loaded.decode(ids) == sample
    assert len(loaded) == 400 and loaded.eos_token == "<|endoftext|>"


def test_runs_table_round_trip(tmp_path):
    runs = [RunRecord(name=f"r{i}", loss=4.0 - i / 10, compute=6.0 * 1000 * i * 20000 * i, n_params=1000 * i,
                      tokens=20000 * i, wall_seconds=1.5 * i, loss_curve=(CurvePoint(1, 100, 5.0, 5.1),))
            for i in range(1, 5)]
    csv_path, json_path = write_runs(runs, tmp_path / "runs")
    for path in (csv_path, json_path):
        back = read_runs(path)
        assert [(r.name, r.loss, r.compute, r.n_params, r.tokens, r.loss_curve) for r in back] == \
               [(r.name, r.loss, r.compute, r.n_params, r.tokens, r.loss_curve) for r in runs]


@pytest.mark.parametrize("rows, message", [
    ("a,1e9,4.0\nb,-5,3.9\n", "line 3, field 'compute': must be positive"),
    ("a,1e9,4.0\nb,1e10,nan\n", "line 3, field 'loss': must be a finite number"),
    ("a,1e9,4.0\nb,1e10,\n", "line 3, field 'loss': missing value"),
    ("a,1e9,4.0\nb,ten,3.9\n", "line 3, field 'compute': not a number"),
])
def test_bad_runs_rows_are_named(tmp_path, rows, message):
    path = tmp_path / "runs.csv"
    path.write_text("name,compute,loss\n" + rows)
    with pytest.raises(RowError, match=message) as info:
        read_runs(path)
    assert str(path) in str(info.value)


def test_too_few_runs_names_the_file(tmp_path):
    from typer.testing import CliRunner

    from lmaudit.cli.scaling import app

    path = tmp_path / "runs.csv"
    path.write_text("name,n_params,tokens,loss\na,1000,20000,4.1\nb,2000,40000,3.9\nc,4000,80000,3.7\n")
    result = CliRunner().invoke(app, ["fit", "--runs", str(path)])
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert str(path) in message and "at least 4 points, got 3" in message


def test_pass_rate_table(tmp_path):
    path = tmp_path / "rates.csv"
    path.write_text("model,compute,problem,pass_rate\n"
                    "small,1e18,p1,0.2\nsmall,1e18,p2,0.5\nbig,1e20,p1,0.6\nbig,1e20,p2,0.9\n")
    compute, rates, problems = read_pass_rates(path)
    assert compute == [1e18, 1e20] and problems == ["p1", "p2"] and rates == [[0.2, 0.5], [0.6, 0.9]]
    path.write_text("model,compute,problem,pass_rate\nsmall,1e18,p1,0.2\nbig,1e20,p1,1.5\n")
    with pytest.raises(RowError, match="line 3, field 'pass_rate'"):
        read_pass_rates(path)
    path.write_text("model,compute,problem,pass_rate\nsmall,1e18,p1,0.2\nsmall,1e18,p2,0.2\nbig,1e20,p1,0.5\n")
    with pytest.raises(DataError, match="'big' has no row for problem"):
        read_pass_rates(path)


def test_pass_rates_from_code_eval_run_directories_through_the_fit_command(tmp_path):
    """Rows naming code-eval run directories: their records' pass_rate scores feed the law, its JSON and plot."""
    import numpy as np

    from typer.testing import CliRunner

    from lmaudit.cli.scaling import app
    from lmaudit.core.types import SampleRecord
    from lmaudit.runner import RunDir

    rng = np.random.default_rng(5)
    difficulty = rng.uniform(0.5, 2.0, 30)
    compute = [1e18, 1e19, 1e20, 1e21]
    lines = ["model,compute,run"]
    for size, c in enumerate(compute):
        rates = rng.binomial(200, np.exp(-difficulty * 40.0 * c ** -0.1)) / 200
        run = RunDir(tmp_path / f"run-{size}")
        run.append([SampleRecord("humaneval", f"HumanEval/{i}", None, {}, [], [], {"pass@1": r, "pass_rate": r})
                    for i, r in enumerate(rates)])
        lines.append(f"m{size},{c},run-{size}")
    table = tmp_path / "runs.csv"
    table.write_text("\n".join(lines) + "\n")
    got_compute, got_rates, problems = read_pass_rates(table)
    assert got_compute == compute and len(problems) == 30 and problems[0].startswith("humaneval/HumanEval/")

    report_path, plot_path = tmp_path / "fit" / "results.json", tmp_path / "fit" / "pass-rates.png"
    result = CliRunner().invoke(app, ["fit", "--pass-rates", str(table), "--target-compute", "1e23",
                                      "--resamples", "200", "--output-dir", str(tmp_path / "fit")])
    assert result.exit_code == 0, result.output
    overall = json.loads(report_path.read_text())["pass_rate_law"]["overall"]
    assert overall["k"]["ci_low"] <= 0.1 <= overall["k"]["ci_high"]
    assert plot_path.read_bytes()[:4] == b"\x89PNG"

    table.write_text("model,compute,run\nm0,1e18,run-0\nm1,1e19,missing-run\n")
    with pytest.raises(RowError, match="line 3, field 'run'.*missing-run is not a run directory"):
        read_pass_rates(table)
