"""The runner on the real model: records, dedup, cache, resume after SIGKILL with counted model calls."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lmaudit.core.errors import ConfigError
from lmaudit.core.types import request_key
from lmaudit.runner import ResponseCache, RunDir, evaluate, select_samples
from lmaudit.tasks import get_task
from lmaudit.tasks.custom import demo_mcq
from lmaudit.testing.counting import CountingModel

pytestmark = pytest.mark.slow


def test_run_directory_contents_and_resume_without_model_calls(smollm2, tmp_path):
    counting = CountingModel(smollm2)
    first = evaluate(counting, [demo_mcq()], tmp_path / "run", cache_path=tmp_path / "c.sqlite", progress=False,
                     model_spec="smollm2")
    assert first.requests_sent == 80 == len(counting.sent) == len(set(counting.sent))
    records = RunDir(tmp_path / "run").records()
    assert len(records) == 20 and all(len(r.responses) == 4 and "acc" in r.scores for r in records)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["model"]["fingerprint"] == smollm2.fingerprint()
    assert manifest["dataset_hashes"] and manifest["seed"] == 0 and "torch" in manifest["versions"]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    acc = results["tasks"]["demo_mcq"]["metrics"]["acc"]
    assert set(acc) == {"value", "stderr", "ci95", "n"} and acc["n"] == 20
    assert set(results["tasks"]["demo_mcq"]["groups"]["topic"]) == {"geography", "science", "math", "history"}

    counting.sent.clear()
    again = evaluate(counting, [demo_mcq()], tmp_path / "run", cache_path=tmp_path / "c.sqlite", progress=False,
                     model_spec="smollm2")
    assert counting.sent == [] and again.samples_resumed == 20 and again.results == first.results

    with pytest.raises(ConfigError, match="holds a different run"):
        evaluate(counting, [demo_mcq()], tmp_path / "run", limit=5, cache_path=tmp_path / "c.sqlite", progress=False)


def test_identical_requests_across_tasks_are_sent_once(smollm2, tmp_path):
    from lmaudit.tasks.custom import mcq
    from pathlib import Path
    import lmaudit.tasks.custom as custom

    copy = mcq(str(Path(custom.__file__).parent / "files" / "demo_mcq.jsonl"), name="demo_copy", id="id")
    counting = CountingModel(smollm2)
    result = evaluate(counting, [demo_mcq(), copy], tmp_path / "run", cache_path=tmp_path / "c.sqlite",
                      progress=False)
    assert len(counting.sent) == 80 and result.samples_scored == 40
    assert result.results["tasks"]["demo_copy"]["metrics"] == result.results["tasks"]["demo_mcq"]["metrics"]


def test_torn_last_line_is_dropped_and_resumed(smollm2, tmp_path):
    evaluate(smollm2, [demo_mcq()], tmp_path / "run", cache_path=tmp_path / "c.sqlite", progress=False)
    samples = tmp_path / "run" / "samples.jsonl"
    lines = samples.read_text().splitlines(keepends=True)
    samples.write_text("".join(lines[:-3]) + lines[-3][:40])  # a kill in the middle of a write
    counting = CountingModel(smollm2)
    result = evaluate(counting, [demo_mcq()], tmp_path / "run", cache_path=tmp_path / "c.sqlite", progress=False)
    assert counting.sent == [] and result.samples_scored == 3 and len(RunDir(tmp_path / "run").records()) == 20


def test_sigkill_mid_run_then_resume(smollm2, tmp_path, data_dir):
    run, cache = tmp_path / "run", tmp_path / "cache.sqlite"
    # 24 questions = 96 requests; the first chunk (64 requests) lands records, and the kill follows at once.
    command = [sys.executable, "-m", "lmaudit", "eval", "--model", "smollm2", "--tasks", "mmlu", "--limit", "24",
               "--output-dir", str(run), "--cache", str(cache), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = run / "samples.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (samples.exists() and samples.stat().st_size > 0):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(RunDir(run).records())
    assert 0 < finished < 24, "the kill should land mid-run"
    answered_before = ResponseCache(cache).count()
    # The killed invocation is in the manifest, and counts every call it made (calls are counted before they go).
    killed = json.loads((run / "manifest.json").read_text())["invocations"][-1]
    assert killed["finished"] is False and killed["requests_sent"]["target"] >= answered_before > 0

    task = get_task("mmlu")
    counting = CountingModel(smollm2)
    resumed = evaluate(counting, [task], run, limit=24, cache_path=cache, progress=False, model_spec="smollm2")
    all_keys = {request_key(r) for s in select_samples(task.samples(), 24, "subject") for r in task.requests(s)}
    assert len(counting.sent) == len(set(counting.sent)) == len(all_keys) - answered_before
    assert resumed.samples_resumed == finished
    invocations = json.loads((run / "manifest.json").read_text())["invocations"]
    assert [i["finished"] for i in invocations] == [False, True]
    assert invocations[-1]["requests_sent"]["target"] == len(counting.sent)

    fresh = evaluate(smollm2, [get_task("mmlu")], tmp_path / "fresh", limit=24,
                     cache_path=tmp_path / "fresh.sqlite", progress=False, model_spec="smollm2")
    assert json.loads((run / "results.json").read_text()) == json.loads((tmp_path / "fresh" / "results.json").read_text())
