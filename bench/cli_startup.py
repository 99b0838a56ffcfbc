"""`lmaudit --help` wall time (median of several runs) against a bare `python -c pass`, and whether torch loads.

    .venv/bin/python bench/cli_startup.py
Target: under 0.5 s.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time


def wall(command: list[str], runs: int = 9) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system) of the command."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - began)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    help_time, help_cpu = wall([sys.executable, "-m", "lmaudit", "--help"])
    bare, _ = wall([sys.executable, "-c", "pass"])
    probe = subprocess.run([sys.executable, "-c", "import sys, lmaudit.cli.main; print('torch' in sys.modules)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    print(f"lmaudit --help: {help_time * 1000:.0f} ms wall, {help_cpu * 1000:.0f} ms CPU "
          f"(bare python: {bare * 1000:.0f} ms wall; load average {os.getloadavg()[0]:.1f}); "
          f"torch imported at start-up: {probe}; target < 500 ms: {'ok' if help_time < 0.5 else 'MISSED'}")
    return 0 if help_time < 0.5 and probe == "False" else 1


if __name__ == "__main__":
    sys.exit(main())
