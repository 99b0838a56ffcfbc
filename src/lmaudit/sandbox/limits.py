"""The limits one sandboxed program runs under."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from lmaudit.core.errors import ConfigError


@dataclass(frozen=True)
class Limits:
    """Per-program limits. CPU time defaults to the wall-clock limit."""

    wall_seconds: float = 10.0
    cpu_seconds: float | None = None
    memory_bytes: int = 1 << 30  # address space of each process
    total_memory_bytes: int = 1 << 30  # memory of all its processes together, kernel's share included (cgroup)
    max_processes: int = 32  # processes and threads of the sandbox's uid
    max_output_bytes: int = 1 << 20  # stdout + stderr; more kills the program
    max_file_bytes: int = 16 << 20  # largest file it may write
    tmp_bytes: int = 64 << 20  # size of the writable working directory (bwrap)
    max_files: int = 10_000  # files and directories in it (bwrap)
    max_open_files: int = 256
    stderr_chars: int = 2000  # tail of stderr kept in the result

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and value <= 0:
                raise ConfigError(f"sandbox limit {name} must be positive, got {value}")

    def rlimits(self, process_limit: bool) -> dict[str, tuple[int, int]]:
        cpu = math.ceil(self.cpu_seconds if self.cpu_seconds is not None else self.wall_seconds)
        limits = {
            "RLIMIT_CPU": (cpu, cpu + 1),  # SIGXCPU at the soft limit, SIGKILL one second later
            "RLIMIT_AS": (self.memory_bytes, self.memory_bytes),
            "RLIMIT_FSIZE": (self.max_file_bytes, self.max_file_bytes),
            "RLIMIT_NOFILE": (self.max_open_files, self.max_open_files),
            "RLIMIT_CORE": (0, 0),
        }
        if process_limit:
            limits["RLIMIT_NPROC"] = (self.max_processes, self.max_processes)
        return limits
