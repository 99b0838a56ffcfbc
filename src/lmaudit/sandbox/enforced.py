"""What enforces each of a sandbox's caps and guards on this machine, or why nothing does (for
`Sandbox.describe()`, the run manifest and `lmaudit sandbox info`). Nothing here may vary between two
processes on one machine: a resumed run must describe its sandbox as the first one did."""

from __future__ import annotations

from typing import Any

from lmaudit.sandbox.cgroups import CgroupSupport
from lmaudit.sandbox.isolation import Isolation
from lmaudit.sandbox.limits import Limits


def enforced(limits: Limits, level: Isolation, groups: CgroupSupport) -> dict[str, dict[str, Any]]:
    """Each cap and guard, with the mechanism that enforces it here (or "none" and the fallback)."""
    if groups.version is not None:
        setting = "memory.max" if groups.version == 2 else "memory.limit_in_bytes"
        memory = {"mechanism": f"cgroup v{groups.version} {setting}", "bytes": limits.total_memory_bytes}
    else:
        # Without a group, only the per-process address space bounds it: processes x address space.
        worst = limits.max_processes * limits.memory_bytes + limits.tmp_bytes if level.process_limit else None
        memory = {"mechanism": "none", "bytes": None,
                  "why": "no cgroup lmaudit may make groups in (`lmaudit sandbox info` shows cgroups.reason)",
                  "fallback": "address space per process (RLIMIT_AS) only", "worst_case_bytes": worst}
    process_mechanisms = [m for m, on in (("RLIMIT_NPROC", level.process_limit),
                                          ("cgroup pids.max", groups.pids_parent is not None)) if on]
    files = ({"mechanism": "tmpfs nr_inodes", "count": limits.max_files} if level.workdir_mount else
             {"mechanism": "none", "count": None,
              "why": "only bwrap mounts the capped working directory" if level.level != "bwrap" else
              "the working-directory mount was refused (see notes)"})
    if level.separate_uid:
        channel = "monitor process under a uid of its own; the program never holds the status pipe"
    elif level.level == "bwrap":
        channel = "non-dumpable monitor in the program's user namespace; the program never holds the pipe"
    else:
        channel = "forgeable: the program and the monitor share a uid and nothing hides the monitor"
    return {
        "total_memory": memory,
        "processes": {"mechanism": " + ".join(process_mechanisms) or "none",
                      "count": limits.max_processes if process_mechanisms else None},
        "files": files,
        "syscall_filter": {"mechanism": "seccomp (bwrap --seccomp)" if level.syscall_filter else "none",
                           "denied": ["keyring", "AF_UNIX sockets", "datagram socket pairs", "namespaces",
                                      "io_uring", "other ABIs"] if level.syscall_filter else []},
        "status_channel": {"mechanism": channel},
    }
