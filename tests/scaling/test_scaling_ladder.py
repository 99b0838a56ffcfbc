"""End to end: the tiny ladder through the CLI, its files, the registered prediction, and the hf backend."""

from __future__ import annotations

import json
import math
from datetime import datetime

import pytest
from typer.testing import CliRunner

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.scaling.prediction import read_prediction, register_prediction
from lmaudit.scaling.runs import read_runs


def test_runs_table_accounts_compute(tiny_ladder):
    out, _ = tiny_ladder
    runs = read_runs(out / "runs.csv")
    ladder, target = [r for r in runs if r.role == "ladder"], runs[-1]
    assert target.role == "target" and len(ladder) == len(runs) - 1
    assert len({r.n_params for r in ladder}) == 5  # five sizes (each may be trained with several seeds)
    for run in runs:
        assert run.compute == pytest.approx(6 * run.n_params * run.tokens)
        assert run.wall_seconds > 0
        assert run.loss_curve and run.loss_curve[-1].heldout_loss == pytest.approx(run.loss)
        assert run.loss_curve[-1].tokens == run.tokens
    computes = [r.compute for r in ladder]
    assert max(computes) / min(computes) >= 100
    assert target.compute >= 10 * max(computes)
    assert target.loss < ladder[0].loss  # 2,000x the compute of the smallest run must lower the loss
    as_json = read_runs(out / "runs.json")
    assert [(r.name, r.n_params, r.tokens, r.loss) for r in as_json] == [(r.name, r.n_params, r.tokens, r.loss) for r in runs]


def test_prediction_is_registered_before_the_target_trains(tiny_ladder):
    out, result = tiny_ladder
    prediction = read_prediction(out / "prediction.json")
    target = read_runs(out / "runs.json")[-1]
    assert prediction.target == target.name and prediction.compute == pytest.approx(target.compute)
    registered = datetime.fromisoformat(prediction.created_at)
    started = datetime.fromisoformat(json.loads((out / "runs.json").read_text())[-1]["config"]["started_at"])
    assert registered <= started
    report = json.loads((out / "results.json").read_text())
    assert report["kind"] == "scaling-ladder" and report["metrics"][0]["metric"] == "predicted_loss"
    assert report["relative_error"] == pytest.approx((target.loss - prediction.loss.value) / target.loss)
    assert prediction.loss.ci_low <= prediction.loss.value <= prediction.loss.ci_high
    assert "relative error" in result.output


def test_edited_prediction_fails_its_hash(tiny_ladder, tmp_path):
    out, _ = tiny_ladder
    raw = json.loads((out / "prediction.json").read_text())
    raw["prediction"]["loss"]["value"] -= 0.1
    edited = tmp_path / "prediction.json"
    edited.write_text(json.dumps(raw))
    with pytest.raises(DataError, match="does not match its sha256"):
        read_prediction(edited)
    with pytest.raises(ConfigError, match="never overwritten"):
        register_prediction(out / "prediction.json", {"target": {}})


def test_rerun_reuses_runs_and_keeps_the_prediction(tiny_ladder, small_corpus):
    from lmaudit.cli.scaling import app

    out, _ = tiny_ladder
    before = (out / "prediction.json").read_text()
    losses = [r.loss for r in read_runs(out / "runs.csv")]
    result = CliRunner().invoke(app, ["ladder", "--preset", "tiny", "--corpus", str(small_corpus), "--output-dir", str(out),
                                      "--resamples", "100", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "registered prediction kept" in result.output
    assert (out / "prediction.json").read_text() == before
    assert [r.loss for r in read_runs(out / "runs.csv")] == losses


def test_plot_is_a_png(tiny_ladder):
    out, _ = tiny_ladder
    data = (out / "ladder.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_trained_model_scores_through_the_hf_backend(tiny_ladder):
    """load_model("hf:<dir>") + loglikelihood (the `lmaudit eval` path) agrees with a direct forward pass."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmaudit.core.types import LoglikelihoodRequest
    from lmaudit.models import load_model

    folder = tiny_ladder[0] / "runs" / "target-d56"
    model = load_model(f"hf:{folder}")
    text = "def get_payload(self, i=None, decode=False):\n    return self._payload\n"
    results = model.loglikelihood([LoglikelihoodRequest("", text), LoglikelihoodRequest("import email\n", "from")])
    assert all(math.isfinite(r.logprob) and r.logprob < 0 and r.n_tokens > 0 for r in results)

    tokenizer = AutoTokenizer.from_pretrained(folder)
    direct = AutoModelForCausalLM.from_pretrained(folder)
    ids = torch.tensor([[tokenizer.eos_token_id] + tokenizer.encode(text)])
    with torch.no_grad():
        logprobs = torch.log_softmax(direct(input_ids=ids).logits[0, :-1].float(), dim=-1)
    expected = float(logprobs[torch.arange(ids.shape[1] - 1), ids[0, 1:]].sum())
    assert results[0].n_tokens == ids.shape[1] - 1
    assert results[0].logprob == pytest.approx(expected, abs=1e-3)


def test_trained_model_evaluates_through_the_eval_command(tiny_ladder, tmp_path):
    import subprocess
    import sys

    folder = tiny_ladder[0] / "runs" / "target-d56"
    command = [sys.executable, "-m", "lmaudit", "eval", "--model", f"hf:{folder}", "--tasks", "demo_mcq",
               "--output-dir", str(tmp_path / "run"), "--cache", str(tmp_path / "cache.sqlite"), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 20 and all(len(s["responses"]) == len(s["requests"]) > 1 for s in samples)
    assert "demo_mcq" in done.stdout and "model requests sent: " in done.stderr


def test_fit_command_on_ladder_runs(tiny_ladder, tmp_path):
    from lmaudit.cli.scaling import app

    out, _ = tiny_ladder
    target = read_runs(out / "runs.csv")[-1]
    report_path, plot_path = tmp_path / "fit" / "results.json", tmp_path / "fit" / "fit.png"
    result = CliRunner().invoke(app, ["fit", "--runs", str(out / "runs.csv"), "--role", "ladder", "--target-compute",
                                      str(target.compute), "--resamples", "100", "--output-dir",
                                      str(tmp_path / "fit")])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert "params_law" not in report  # one tokens-per-parameter recipe: N and D are not separable
    registered = read_prediction(out / "prediction.json")
    assert report["compute_law"]["extrapolation"]["value"] == pytest.approx(registered.loss.value, rel=1e-9)
    assert plot_path.read_bytes()[:4] == b"\x89PNG"

    result = CliRunner().invoke(app, ["fit", "--runs", str(out / "runs.csv"), "--law", "params"])
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and "runs.csv" in message and "cannot separate" in message


def test_ladder_checks_its_spans():
    from dataclasses import replace

    from lmaudit.scaling.ladder import PRESETS

    with pytest.raises(ConfigError, match="fewer than 10x"):
        replace(PRESETS["tiny"], target_width=32).check()
    with pytest.raises(ConfigError, match="at least 5"):
        replace(PRESETS["tiny"], widths=(8, 16, 28)).check()
    with pytest.raises(ConfigError, match="fewer than 100x"):
        replace(PRESETS["tiny"], widths=(16, 20, 24, 28, 32)).check()
