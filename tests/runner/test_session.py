"""RunSession's invariants, each reproduced the way it used to break: two writers, a run that dies mid-way,
files that must survive a crash, and JSON other readers can parse."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from lmaudit.core.errors import ConfigError
from lmaudit.core.output import dumps, write_json_atomic
from lmaudit.core.types import Generation, GenerateRequest, LoglikelihoodResult
from lmaudit.runner import ModelRole, RunSession


class ScriptedModel:
    """Answers generate requests with their prompt reversed; fails on the call number `fail_on` (1-based)."""

    name = "scripted"

    def __init__(self, fail_on: int | None = None):
        self.calls, self.fail_on = 0, fail_on

    def fingerprint(self) -> str:
        return "scripted-1"

    def loglikelihood(self, requests):
        return [LoglikelihoodResult(-1.0, True, 1) for _ in requests]

    def generate(self, requests):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("the backend died")
        return [Generation(r.prompt[::-1], "stop") for r in requests]


def _open(path, model, tmp_path, **identity):
    return RunSession.open(path, kind="test", identity=identity, roles=[ModelRole("target", model, "scripted")],
                           cache_path=tmp_path / "cache.sqlite", progress=False)


def test_a_second_writer_is_refused_with_one_clear_line(tmp_path):
    run = tmp_path / "run"
    with _open(run, ScriptedModel(), tmp_path):
        with pytest.raises(ConfigError, match=f"being written by another lmaudit process \\(pid {os.getpid()}\\)"):
            _open(run, ScriptedModel(), tmp_path)
        # The same through the command line, from another process: exit 2, one line, nothing written.
        before = (run / "manifest.json").read_bytes()
        result = subprocess.run([sys.executable, "-m", "lmaudit", "eval", "--tasks", "demo_mcq", "--output-dir",
                                 str(run), "--quiet"], capture_output=True, text=True, timeout=300)
        assert result.returncode == 2 and "being written by another lmaudit process" in result.stderr
        assert "Traceback" not in result.stderr and (run / "manifest.json").read_bytes() == before
    with _open(run, ScriptedModel(), tmp_path):  # released on close
        pass


def test_a_run_that_dies_has_counted_every_call_it_made(tmp_path):
    model = ScriptedModel(fail_on=2)
    requests = [GenerateRequest(prompt=f"prompt {i:03d}") for i in range(20)]
    session = _open(tmp_path / "run", model, tmp_path)
    with pytest.raises(RuntimeError, match="backend died"):
        with session:
            session.call("target", requests)
    invocation = json.loads((tmp_path / "run" / "manifest.json").read_text())["invocations"][-1]
    # The first chunk (8 requests) was answered; the second (the other 12: a fast model gets bigger chunks) was
    # sent when the backend died, and is counted.
    assert invocation == {**invocation, "finished": False, "requests_sent": {"target": 20}, "cache_hits": {"target": 0}}

    resumed = _open(tmp_path / "run", ScriptedModel(), tmp_path)
    with resumed:
        answers = resumed.call("target", requests)
    assert [a.text for a in answers] == [r.prompt[::-1] for r in requests]
    assert resumed.hits["target"] == 8 and resumed.sent["target"] == 12


def test_a_resumed_run_with_other_settings_is_refused(tmp_path):
    with _open(tmp_path / "run", ScriptedModel(), tmp_path, limit=3):
        pass
    with pytest.raises(ConfigError, match=r"differs in: limit"):
        _open(tmp_path / "run", ScriptedModel(), tmp_path, limit=4)


def test_json_files_are_fsynced_file_then_directory(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    target = tmp_path / "results.json"
    write_json_atomic(target, {"value": 1})
    assert json.loads(target.read_text()) == {"value": 1}
    # The temporary file is synced before the rename, the directory after it (so the rename is on disk too).
    assert len(synced) == 2 and synced[0].startswith(str(tmp_path / ".results.json.")) and synced[1] == str(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))


def test_results_are_strict_json():
    text = dumps({"value": math.nan, "ci95": [-math.inf, 1.0], "n": 0})
    assert json.loads(text) == {"value": None, "ci95": [None, 1.0], "n": 0}
    assert "NaN" not in text and "Infinity" not in text


class RecordingModel(ScriptedModel):
    """Log-likelihood answers, and the contexts of every call."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def loglikelihood(self, requests):
        self.batches.append([r.context for r in requests])
        return super().loglikelihood(requests)


def test_a_chunk_does_not_split_requests_that_share_a_long_context_head(tmp_path):
    from lmaudit.core.types import LoglikelihoodRequest

    def few_shot(subject, n):
        head = f"Worked examples about {subject}.\n" + "Example question and its answer.\n" * 20
        return [LoglikelihoodRequest(head + f"Question {i}?\nAnswer:", f" {letter}")
                for i in range(n) for letter in "ABCD"]

    # 40 + 40 requests behind one head each, then contexts that share nothing (sorted after them); the first chunk
    # (64) ends inside the second head's requests and is extended to its last one, not beyond.
    shared = few_shot("rivers", 10) + few_shot("tides", 10)
    unrelated = [LoglikelihoodRequest(f"z{i:03d}: a context of its own", " yes") for i in range(150)]
    model = RecordingModel()
    with _open(tmp_path / "run", model, tmp_path) as session:
        session.call("target", unrelated + shared)
    assert [c.split(".")[0] for c in model.batches[0]] == [c.context.split(".")[0] for c in shared]
    assert sum(len(b) for b in model.batches) == len(shared) + len(unrelated)
    # Contexts without a shared head are cut where the chunk size says.
    alone, fresh = RecordingModel(), tmp_path / "fresh-cache"
    fresh.mkdir()
    with _open(tmp_path / "run2", alone, fresh) as session:
        session.call("target", unrelated)
    assert len(alone.batches[0]) == 64
