"""Both commands as a user runs them, on the real model: a multilingual quiz file with a language column."""

import json
import os
import subprocess
import sys

import pytest

ITEMS = [
    {"language": "en", "question": "Which insect makes honey?", "choices": ["The bee", "The ant", "The moth",
                                                                           "The flea"], "answer": 0},
    {"language": "fr", "question": "De quelle couleur est le ciel par beau temps ?",
     "choices": ["Vert", "Bleu", "Rouge", "Noir"], "answer": 1},
    {"language": "de", "question": "Wie viele Tage hat eine Woche?", "choices": ["Fünf", "Sechs", "Sieben", "Acht"],
     "answer": 2},
]


def command(name, *args):
    module = "robustness" if name == "consistency" else "calibration"
    code = f"from lmaudit.cli.{module} import app; app(prog_name='lmaudit {name}')"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_the_command_modules_import_nothing_heavy():
    code = ("import sys, lmaudit.cli.robustness, lmaudit.cli.calibration; "
            "print(any(m in sys.modules for m in ('torch', 'transformers', 'matplotlib', 'numpy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_misspelt_variant_kind_fails_fast_with_one_line():
    result = command("consistency", "--variants", "rotate,shufle")
    assert result.returncode == 2 and "unknown variant kind(s) shufle" in result.stderr
    assert "Traceback" not in result.stderr and "loading model" not in result.stderr


@pytest.mark.slow
def test_consistency_then_calibration_with_a_language_breakdown(tmp_path):
    (tmp_path / "quiz.jsonl").write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in ITEMS))
    (tmp_path / "quiz.toml").write_text('kind = "mcq"\nname = "quiz"\npath = "quiz.jsonl"\ngroup_by = ["language"]\n')
    common = ["--tasks", str(tmp_path / "quiz.toml"), "--cache", str(tmp_path / "cache.sqlite"), "--quiet"]
    robust = command("consistency", *common, "--variants", "rotate", "--output-dir", str(tmp_path / "robust"))
    assert robust.returncode == 0, robust.stderr
    assert "REVAS" in robust.stdout and "rotate" in robust.stdout
    table = tmp_path / "robust" / "robustness_families.jsonl"
    families = [json.loads(line) for line in table.read_text().splitlines()]
    assert {row["group"] for row in families} == {None, "en", "fr", "de"}
    assert (tmp_path / "robust" / "robustness_by_language.png").stat().st_size > 0

    # The calibration run's requests are the consistency run's original variants: all answered from the cache.
    calibrated = command("calibration", *common, "--output-dir", str(tmp_path / "calibration"))
    assert calibrated.returncode == 0, calibrated.stderr
    assert "model requests sent: 0" in calibrated.stderr and "ECE (top, width bins)" in calibrated.stdout
    report = json.loads((tmp_path / "calibration" / "calibration.json").read_text())
    assert set(report["groups"]["language"]) == {"en", "fr", "de"} and report["overall"]["n_items"] == 3
    for name in ("reliability_width.png", "reliability_mass.png", "calibration_by_language.png"):
        assert (tmp_path / "calibration" / name).read_bytes()[:4] == b"\x89PNG"
