"""What the benchmarks share: the machine's load as `uptime` prints it, CPU time with reaped children, and a
command timed in a fresh process with the figures every benchmark records beside it (wall, CPU of the child, load
before and after).

The scripts run as `python bench/<name>.py`, so this folder is on sys.path and `from machine import ...` works."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (pool workers count once the pool is joined)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


@dataclass
class TimedRun:
    completed: subprocess.CompletedProcess
    wall: float
    figures: dict[str, Any]  # wall_seconds, cpu_seconds, load_average_before, load_average_after


def run_timed(command: list[str]) -> TimedRun:
    """Run `command`, echo its stdout (and the tail of its stderr when it fails), and time it."""
    load_before = os.getloadavg()
    started = time.perf_counter()
    completed = subprocess.run(command, text=True, capture_output=True)
    wall = time.perf_counter() - started
    load_after = os.getloadavg()
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    sys.stdout.write(completed.stdout)
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr[-4000:])
    return TimedRun(completed, wall, {"wall_seconds": round(wall, 1),
                                      "cpu_seconds": round(child.ru_utime + child.ru_stime, 1),
                                      "load_average_before": [round(x, 2) for x in load_before],
                                      "load_average_after": [round(x, 2) for x in load_after]})
