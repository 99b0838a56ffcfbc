"""Real HTTP servers on 127.0.0.1 for the API backend's tests.

- `stub`: the tiny deterministic server (lmaudit.testing.stubserver) in a thread of this process;
- `lmaudit_server`: `python -m lmaudit.serve` serving the bundled SmolLM2 (one per session, a subprocess);
- `llama_server`: llama.cpp's server (`llama-cpp-python[server]`) on the same GGUF, where it is installed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmaudit.testing.background import BackgroundServer
from lmaudit.testing.stubserver import StubServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their keys; a developer's real key must never reach a test server or a run directory."""
    monkeypatch.delenv("LMAUDIT_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def stub() -> Iterator[tuple[StubServer, str]]:
    server = StubServer()
    with BackgroundServer(server.app) as running:
        yield server, running.url + "/v1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(url: str, process: subprocess.Popen, seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/models", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"server at {url} not ready after {seconds} s")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def lmaudit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`lmaudit serve` on the bundled model: base URL .../v1, model name 'smollm2'."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    log = tmp_path_factory.mktemp("lmaudit-serve") / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "lmaudit.serve", "--model", "smollm2", "--name", "smollm2", "--port", str(port),
         "--threads", "1"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(url, process, 120, log)
        yield url
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama.cpp's server on the same GGUF file: base URL .../v1, model name 'smollm2'."""
    pytest.importorskip("llama_cpp.server", reason="llama.cpp's server needs: pip install 'llama-cpp-python[server]'")
    from lmaudit.models.hf import smollm2_path

    port = free_port()
    log = tmp_path_factory.mktemp("llama-cpp") / "server.log"  # a file: a full pipe would block its logging
    process = subprocess.Popen(
        [sys.executable, "-m", "lmaudit.models.llamacpp_server", "--model", str(smollm2_path()),
         "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1"],
        stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(url, process, 120, log)
        yield url
    finally:
        _stop(process)
