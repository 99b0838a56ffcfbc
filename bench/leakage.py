"""Benchmark: `lmaudit leakage run` on smollm2, end to end in a fresh process, against the issue's acceptance.

Leaks MMLU test items with their answers into a mix of 2025 arXiv abstracts, fine-tunes the top decoder layers of
SmolLM2-135M-Instruct on it and, for the baseline, on clean text for the same number of steps, then checks:
- accuracy on the leaked questions rises: the paired 95% CI of leak - clean (and of leak - base) is above zero;
- accuracy on the held-out subjects does not move: the CI of leak - clean includes zero;
- Min-K% AUROC of leaked vs held-out questions rises from the base model's value to at least 0.8;
- the whole run takes under 30 minutes on an idle machine (the load average is recorded beside the time).

    LMAUDIT_DATA_DIR=../shared/data .venv/bin/python bench/leakage.py --out /tmp/leakage-bench \\
        --json docs/bench-leakage.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from pathlib import Path

from machine import run_timed

WALL_LIMIT_S = 30 * 60
MINK_TARGET = 0.8
LEAKED = "mmlu:marketing,high_school_psychology"
CONTROL = "mmlu:public_relations,business_ethics"


def _row(results: dict, metric: str, model: str, subset: str) -> dict:
    for row in results["metrics"]:
        if (row["metric"], row["task"], row["group"]) == (metric, model, f"subset={subset}"):
            return row
    raise KeyError(f"no {metric} row for {model} on {subset}")


def _phase_seconds(out: Path) -> dict[str, float]:
    """Seconds per phase, from the run's own records (training runs and each sub-run's manifest)."""
    phases = {}
    for name in ("clean", "leak"):
        records = list((out / "train").glob(f"{name}-*/run.json"))
        if records:
            phases[f"train_{name}"] = round(json.loads(records[0].read_text())["wall_seconds"], 1)
    for kind in ("eval", "mink"):
        for manifest in sorted((out / kind).glob("*/manifest.json")):
            entries = json.loads(manifest.read_text())["invocations"]
            phases[f"{kind}_{manifest.parent.name}"] = round(sum(e.get("seconds", 0.0) for e in entries), 1)
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/leakage-bench"), help="run directory")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--leak", default=LEAKED)
    parser.add_argument("--control", default=CONTROL)
    parser.add_argument("--setting", default="answers")
    parser.add_argument("--limit", type=int, default=50, help="questions per subject (leaked and evaluated)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--trainable-layers", type=int, default=4)
    parser.add_argument("--leak-fraction", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="resume an existing --out (not a clean timing)")
    args = parser.parse_args()

    if args.out.exists() and not args.keep:
        shutil.rmtree(args.out)
    command = [sys.executable, "-m", "lmaudit", "leakage", "run", "--model", "smollm2", "--leak", args.leak,
               "--control", args.control, "--setting", args.setting, "--limit", str(args.limit),
               "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len),
               "--lr", str(args.lr), "--trainable-layers", str(args.trainable_layers),
               "--leak-fraction", str(args.leak_fraction), "--threads", str(args.threads),
               "--output-dir", str(args.out), "--private-cache", "--quiet"]
    timed = run_timed(command)
    if timed.completed.returncode != 0:
        return timed.completed.returncode
    wall = timed.wall

    results = json.loads((args.out / "results.json").read_text())
    gain = _row(results, "acc_diff", "leak-clean", "leaked")
    raw_gain = _row(results, "acc_diff", "leak-base", "leaked")
    heldout = _row(results, "acc_diff", "leak-clean", "heldout")
    heldout_raw = _row(results, "acc_diff", "leak-base", "heldout")
    mink_base = _row(results, "mink_auroc", "base", "leaked")["value"]
    mink_leak = _row(results, "mink_auroc", "leak", "leaked")["value"]
    checks = {
        "leaked_gain_ci_above_zero": gain["ci95"][0] > 0 and raw_gain["ci95"][0] > 0,
        "heldout_ci_includes_zero": heldout["ci95"][0] <= 0 <= heldout["ci95"][1],
        "mink_auroc_rises_to_target": mink_leak >= MINK_TARGET and mink_leak > mink_base,
        "under_30_minutes": wall < WALL_LIMIT_S,
    }
    figures = {
        "command": " ".join(command[1:]),
        **timed.figures,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "phases_seconds": _phase_seconds(args.out),
        "accuracy": {f"{row['task']}/{row['group'].partition('=')[2]}": row["value"] for row in results["metrics"]
                     if row["metric"] == "acc"},
        "leak_minus_clean_leaked": gain, "leak_minus_base_leaked": raw_gain,
        "leak_minus_clean_heldout": heldout, "leak_minus_base_heldout": heldout_raw,
        "mink_auroc": {row["task"]: row["value"] for row in results["metrics"]
                       if row["metric"] == "mink_auroc" and row["group"] == "subset=leaked"},
        "mink_shift_auroc": results["measurements"]["mink_shift_auroc"],
        "scans": results["measurements"]["scans"],
        "mix": results["mixes"]["leak"],
        "training": {name: {k: v for k, v in run.items() if k != "loss_curve"}
                     for name, run in results["training"].items()},
        "checks": checks,
    }
    text = json.dumps(figures, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
