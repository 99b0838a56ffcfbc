"""What the leakage tests share: the subjects of the tiny run and its command line."""

from __future__ import annotations

from pathlib import Path

LEAKED = "global_facts"
CONTROL = "public_relations"
QUESTIONS = 8  # per subject


def leakage_argv(model_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["leakage", "run", "--model", f"hf:{model_dir}", "--leak", f"mmlu:{LEAKED}", "--control",
            f"mmlu:{CONTROL}", "--limit", str(QUESTIONS), "--steps", "20", "--batch-size", "4", "--seq-len", "64",
            "--lr", "0.01", "--trainable-layers", "0", "--threads", "1", "--private-cache", "--quiet",
            "--output-dir", str(out), *extra]
