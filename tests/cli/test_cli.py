"""The command line as a user meets it: fast help, clear errors with exit code 2, an end-to-end run."""

import json
import os
import subprocess
import sys

import pytest

LMAUDIT = [sys.executable, "-m", "lmaudit"]


def run(*args, env=None, timeout=600):
    return subprocess.run([*LMAUDIT, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_help_does_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from lmaudit.cli.main import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_tasks_and_models_listings():
    tasks = run("tasks")
    assert tasks.returncode == 0 and "mmlu_cloze" in tasks.stdout and "mmlu_<subject>" in tasks.stdout
    models = run("models")
    assert models.returncode == 0 and "openai:..." in models.stdout and "smollm2" in models.stdout


def test_unknown_task_and_model_give_one_clear_line():
    bad_task = run("eval", "--tasks", "mmlu_anatomyy", "--model", "smollm2")
    assert bad_task.returncode == 2 and "Did you mean 'mmlu_anatomy'?" in bad_task.stderr
    bad_model = run("eval", "--tasks", "demo_mcq", "--model", "hff:gpt2")
    assert bad_model.returncode == 2 and "unknown model spec prefix 'hff'" in bad_model.stderr
    assert "Traceback" not in bad_task.stderr + bad_model.stderr


def test_missing_data_says_where_it_looked(tmp_path):
    result = run("eval", "--tasks", "mmlu", env={"LMAUDIT_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert str(tmp_path / "mmlu") in result.stderr.replace("\n", "") and "LMAUDIT_DATA_DIR" in result.stderr


def test_malformed_row_names_file_line_and_field(tmp_path):
    (tmp_path / "quiz.jsonl").write_text('{"question": "a", "choices": ["x", "y"], "answer": 0}\n'
                                         '{"question": "b", "choices": ["x", "y"]}\n')
    (tmp_path / "quiz.toml").write_text('kind = "mcq"\npath = "quiz.jsonl"\n')
    result = run("eval", "--tasks", str(tmp_path / "quiz.toml"), "--output-dir", str(tmp_path / "run"))
    flat = result.stderr.replace("\n", "")
    assert result.returncode == 2 and "quiz.jsonl, line 2, field 'answer'" in flat


@pytest.mark.slow
def test_eval_then_show(tmp_path):
    out = tmp_path / "run"
    result = run("eval", "--model", "smollm2", "--tasks", "demo_mcq", "--output-dir", str(out),
                 "--cache", str(tmp_path / "c.sqlite"), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "demo_mcq" in result.stdout and "acc" in result.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["tasks"]["demo_mcq"]["metrics"]["acc"]["n"] == 20
    shown = run("show", str(out), "--group", "topic")
    assert shown.returncode == 0 and "topic=geography" in shown.stdout
    missing = run("show", str(tmp_path))
    assert missing.returncode == 2 and "no results.json" in missing.stderr
