"""Benchmark: `lmaudit scaling ladder` with the default recipe and corpus, timed end to end as a user runs it.

Runs the command in a fresh process (imports, tokenizer training, every run, the fit, the plot), then reads its
report and checks the two acceptance figures: total wall time under 30 minutes and the registered prediction of
the target's held-out loss within 2% (relative) of the actual value.

    nice -n 10 .venv/bin/python bench/scaling_ladder.py --out /tmp/scaling-bench --json /tmp/scaling-bench.json
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
ERROR_LIMIT = 0.02


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/scaling-bench"), help="ladder output folder")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="reuse an existing --out (resumes; not a clean timing)")
    args = parser.parse_args()

    if args.out.exists() and not args.keep:
        shutil.rmtree(args.out)
    command = [sys.executable, "-c", "from lmaudit.cli.scaling import app; app()", "ladder", "--out", str(args.out),
               "--preset", args.preset, "--threads", str(args.threads), "--no-progress"]
    timed = run_timed(command)
    if timed.completed.returncode != 0:
        return timed.completed.returncode
    wall = timed.wall

    report = json.loads((args.out / "results.json").read_text())
    runs = report["ladder"] + [report["target"]]
    figures = {
        "preset": args.preset,
        "threads": args.threads,
        **timed.figures,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "runs": [{"name": r["name"], "n_params": r["n_params"], "tokens": r["tokens"], "compute": r["compute"],
                  "loss": round(r["loss"], 5), "wall_seconds": round(r["wall_seconds"], 1)} for r in runs],
        "ladder_compute_span": max(r["compute"] for r in report["ladder"]) / min(r["compute"] for r in report["ladder"]),
        "target_over_largest_ladder": report["target"]["compute"] / max(r["compute"] for r in report["ladder"]),
        "fit": {k: report["fit"][k] for k in ("a", "b", "c", "rmse_log")},
        "predicted_loss": report["prediction"]["loss"],
        "prediction_registered_at": report["prediction"]["created_at"],
        "target_started_at": report["target"]["config"]["started_at"],
        "actual_loss": report["actual_loss"],
        "relative_error": report["relative_error"],
        "within_ci": report["within_ci"],
        "pass_wall": wall < WALL_LIMIT_S,
        "pass_error": abs(report["relative_error"]) <= ERROR_LIMIT,
    }
    print(json.dumps({k: v for k, v in figures.items() if k != "runs"}, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0 if figures["pass_wall"] and figures["pass_error"] else 1


if __name__ == "__main__":
    sys.exit(main())
