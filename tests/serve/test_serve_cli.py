"""`lmaudit serve` as a user runs it: starts, answers, stops on Ctrl-C; bad input is one line and exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

LMAUDIT = [sys.executable, "-m", "lmaudit"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*LMAUDIT, *args], capture_output=True, text=True, timeout=300, check=False,
                          env={**ENV, **(env or {})})


@pytest.mark.parametrize("args, message", [
    (["--model-arg", "dtyp=float32"], "Did you mean 'dtype'?"),
    (["--model", "openai:smollm2@http://127.0.0.1:9/v1"], "lmaudit serve needs a white-box model"),
    (["--api-key-env", "LMAUDIT_TEST_UNSET_KEY"], "LMAUDIT_TEST_UNSET_KEY: that variable is not set"),
    (["--model", "hff:gpt2"], "unknown model spec prefix 'hff'"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    done = run("serve", *args, "--port", "0")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.startswith("error")]) == 1


@pytest.mark.slow
def test_serves_until_interrupted(tmp_path):
    process = subprocess.Popen([*LMAUDIT, "serve", "--model", "smollm2", "--name", "small", "--port", "0",
                                "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=ENV)
    try:
        line = ""
        while "lmaudit serve:" not in line:
            line = process.stdout.readline()
            assert line or process.poll() is None, "the server exited before listening"
        url = line.split(" on ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        with urllib.request.urlopen(url + "/models", timeout=30) as answer:
            assert json.loads(answer.read())["data"][0]["id"] == "small"
        body = json.dumps({"model": "small", "prompt": [[1, 2, 3]], "max_tokens": 1, "echo": True,
                           "logprobs": 1}).encode()
        request = urllib.request.Request(url + "/completions", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as answer:
            assert len(json.loads(answer.read())["choices"][0]["logprobs"]["tokens"]) == 4
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
