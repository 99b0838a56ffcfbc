"""Calibration from API top_logprobs: a real HTTP server on 127.0.0.1 speaking the OpenAI chat format, read by
the openai backend with loglikelihood=letters; the numbers must match the designed probabilities exactly."""

import json
import math
import re
import subprocess
import sys

import pytest
from aiohttp import web

from synthetic_design import LETTER_MASS, design, write_items

from lmaudit.calibration import calibration_report
from lmaudit.models import load_model
from lmaudit.runner import RunDir, evaluate
from lmaudit.tasks.custom import mcq
from lmaudit.testing.background import BackgroundServer


def chat_app(rows, seen):
    async def models(_request):
        return web.json_response({"object": "list", "data": [{"id": "synth", "object": "model"}]})

    async def chat(request):
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        index = int(re.search(r"Synthetic item (\d+):", prompt).group(1))
        seen.append(index)
        probs, _ = rows[index]
        # The first answer token's alternatives: each letter with its designed share, the rest on one filler.
        top = [{"token": "ABCD"[o], "logprob": math.log(LETTER_MASS * p), "bytes": None, "top_logprobs": []}
               for o, p in enumerate(probs)]
        top.append({"token": " The", "logprob": math.log(1 - LETTER_MASS), "bytes": None, "top_logprobs": []})
        top.sort(key=lambda t: -t["logprob"])
        first = {**top[0], "top_logprobs": top}
        return web.json_response({
            "id": "chatcmpl-synth", "object": "chat.completion", "created": 0, "model": "synth",
            "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content":
                                                                            first["token"]},
                         "logprobs": {"content": [first]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}})

    def build():
        app = web.Application()
        app.router.add_get("/v1/models", models)
        app.router.add_post("/v1/chat/completions", chat)
        return app

    return build


def test_top_logprobs_records_give_the_exact_calibration(tmp_path, monkeypatch):
    monkeypatch.delenv("LMAUDIT_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    delta = 0.05
    rows = design(4, delta)
    task = mcq(str(write_items(tmp_path / "items.jsonl", rows)), name="synthetic_api", id="id")
    seen = []
    with BackgroundServer(chat_app(rows, seen)) as server:
        model = load_model(f"openai:synth@{server.url}/v1", api="chat", loglikelihood="letters")
        evaluate(model, [task], tmp_path / "run", cache_path=tmp_path / "c.sqlite", progress=False)
    # One chat call per question (a transient fault may repeat one), shared by its four letter requests.
    assert set(seen) == set(range(len(rows))) and len(seen) < 1.05 * len(rows)
    records = RunDir(tmp_path / "run").records()
    assert {r["kind"] for rec in records for r in rec.responses} == {"loglikelihood"}
    overall = calibration_report(records).overall
    assert overall.get("top", "width").ece.value == pytest.approx(delta, abs=1e-9)
    assert overall.get("top", "mass").mce.value == pytest.approx(delta, abs=1e-9)
    assert overall.get("options", "width").ece.value == pytest.approx(delta / 2, abs=1e-9)
    assert overall.outside_mass.value == pytest.approx(1 - LETTER_MASS, abs=1e-9)


def test_the_command_reads_an_api_with_backend_options(tmp_path, monkeypatch):
    monkeypatch.delenv("LMAUDIT_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    rows = design(4, 0.05)
    write_items(tmp_path / "items.jsonl", rows)
    (tmp_path / "items.toml").write_text('kind = "mcq"\nname = "synthetic"\npath = "items.jsonl"\nid = "id"\n')
    code = "from lmaudit.cli.calibration import app; app(prog_name='lmaudit calibration')"
    with BackgroundServer(chat_app(rows, [])) as server:
        result = subprocess.run(
            [sys.executable, "-c", code, "--model", f"openai:synth@{server.url}/v1", "--model-arg", "api=chat",
             "--model-arg", "loglikelihood=letters", "--tasks", str(tmp_path / "items.toml"), "--output-dir",
             str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite"), "--quiet"],
            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "probability outside the options │ 0.200" in result.stdout
    report = json.loads((tmp_path / "run" / "calibration.json").read_text())
    assert report["overall"]["n_items"] == len(rows)
    assert report["overall"]["reliability"]["top/width"]["ece"]["value"] == pytest.approx(0.05, abs=1e-9)
