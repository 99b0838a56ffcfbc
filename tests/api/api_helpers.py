"""Shared by the API tests: run the real CLI, read a run directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def data_dir() -> str:
    return os.environ.get("LMAUDIT_DATA_DIR") or str(REPO.parent / "shared" / "data")


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """`lmaudit ...` in a fresh interpreter, as a user runs it (the console script's entry point)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO / "src"), "LMAUDIT_DATA_DIR": data_dir(), **(env or {})}
    return subprocess.run([sys.executable, "-c", "from lmaudit.cli.main import run; run()", *args],
                          capture_output=True, text=True, env=environment, timeout=timeout)


def cli_popen(*args: str, env: dict[str, str] | None = None, log: Path) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(REPO / "src"), "LMAUDIT_DATA_DIR": data_dir(), **(env or {})}
    return subprocess.Popen([sys.executable, "-c", "from lmaudit.cli.main import run; run()", *args],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=environment)


def records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines() if line.strip()]


def generation_file(path: Path, n: int) -> Path:
    """n generation items for the `generate` task: distinct prompts, arbitrary targets."""
    with path.open("w") as handle:
        for i in range(n):
            handle.write(json.dumps({"prompt": f"item {i}: continue", "target": "alpha"}) + "\n")
    return path
