"""A control group per sandbox: one cap on the memory of all its processes together, and on their number.

Per-process limits (RLIMIT_AS x RLIMIT_NPROC) let one sandbox hold 32 GiB; a cgroup bounds the sum, and it
counts what the processes make the kernel hold for them (tmpfs pages, inodes, pipe and socket buffers).

Where the groups go:
- cgroup v2: under $LMAUDIT_SANDBOX_CGROUP (a delegated directory with the memory controller in its
  cgroup.subtree_control), or under this process's own cgroup when that one already delegates memory.
- cgroup v1 (memory and pids hierarchies, as on hosts that still mount them): under this process's own group
  in each hierarchy, so the sandbox stays inside whatever limits this process is under.
- neither (no cgroup file system, not root, nothing delegated): no group; the per-process limits stay the only
  ones, and `Sandbox.describe()` says so.
The driver joins the groups itself, first thing, through cgroup.procs files the host opened for it, so every
process of the program starts inside; the host removes a group once its processes are gone.
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
from dataclasses import dataclass
from pathlib import Path

_ENV_PARENT = "LMAUDIT_SANDBOX_CGROUP"


@dataclass(frozen=True)
class CgroupSupport:
    """Where sandbox groups can be made here, or why none can."""

    version: int | None  # 2, 1, or None
    memory_parent: Path | None
    pids_parent: Path | None  # v2: the same directory; v1: the pids hierarchy, when mounted and writable
    reason: str  # where the parents came from, or why there are none

    def describe(self) -> dict[str, object]:
        return {"version": self.version, "memory_parent": str(self.memory_parent) if self.memory_parent else None,
                "pids_parent": str(self.pids_parent) if self.pids_parent else None, "reason": self.reason}


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(root inside the hierarchy, mount point, file system type, super options) of each cgroup mount."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((fields[3], fields[4].replace("\\040", " "), tail[0], set(tail[2].split(","))))
    return found


def _own_groups() -> dict[str, str]:
    """Controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    groups = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            groups[controller] = path
    return groups


def _inside(mount_root: str, mount_point: str, group: str) -> Path | None:
    """The directory of `group` under a mount of the hierarchy whose root is `mount_root`, if it is visible."""
    relative = os.path.relpath(group, mount_root)
    if relative.startswith(".."):
        return None
    path = Path(mount_point) / relative if relative != "." else Path(mount_point)
    return path if path.is_dir() else None


def _writable(parent: Path) -> str | None:
    """None if a child group can be made and removed under `parent`, else why not."""
    probe = parent / f"lmaudit-probe-{os.getpid()}-{threading.get_ident()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        return f"cannot create a group under {parent}: {exc.strerror}"
    return None


def _v2(mounts, groups) -> CgroupSupport | str:
    unified = [(root, point) for root, point, kind, _ in mounts if kind == "cgroup2"]
    if not unified:
        return "no cgroup2 mount"
    explicit = os.environ.get(_ENV_PARENT)
    if explicit:
        candidates = [(Path(explicit), f"${_ENV_PARENT}")]
    elif "" in groups:
        candidates = [(p, "this process's cgroup") for root, point in unified
                      if (p := _inside(root, point, groups[""])) is not None]
    else:
        candidates = []
    problems = []
    for parent, origin in candidates:
        try:
            delegated = set((parent / "cgroup.subtree_control").read_text().split())
        except OSError as exc:
            problems.append(f"{parent}: {exc.strerror}")
            continue
        if "memory" not in delegated:
            problems.append(f"{parent} does not delegate the memory controller (cgroup.subtree_control)")
            continue
        problem = _writable(parent)
        if problem is None:
            pids = parent if "pids" in delegated else None
            return CgroupSupport(2, parent, pids, f"v2 under {origin} ({parent})")
        problems.append(problem)
    return "cgroup v2: " + ("; ".join(problems) or "this process's cgroup is not under the cgroup2 mount")


def _v1(mounts, groups) -> CgroupSupport | str:
    parents: dict[str, Path] = {}
    for controller in ("memory", "pids"):
        for root, point, kind, options in mounts:
            if kind == "cgroup" and controller in options and controller in groups:
                path = _inside(root, point, groups[controller])
                if path is not None and _writable(path) is None:
                    parents[controller] = path
                    break
    if "memory" not in parents:
        return "cgroup v1: no writable memory hierarchy"
    return CgroupSupport(1, parents["memory"], parents.get("pids"), "v1 under this process's own groups")


_support: CgroupSupport | None = None
_support_lock = threading.Lock()


def detect() -> CgroupSupport:
    """What this machine allows (probed once per process)."""
    global _support
    with _support_lock:
        if _support is None:
            try:
                mounts, groups = _mounts(), _own_groups()
            except OSError as exc:
                _support = CgroupSupport(None, None, None, f"cannot read /proc/self: {exc}")
            else:
                reasons = []
                for attempt in (_v2, _v1):
                    outcome = attempt(mounts, groups)
                    if isinstance(outcome, CgroupSupport):
                        _support = outcome
                        break
                    reasons.append(outcome)
                else:
                    _support = CgroupSupport(None, None, None, "; ".join(reasons))
            if _support.version is not None:
                _sweep_stale(_support)
        return _support


_names = itertools.count()
_leftovers: list[Path] = []  # groups whose processes were still exiting when their sandbox finished
_leftovers_lock = threading.Lock()


def _prefix() -> str:
    return f"lmaudit-{os.getpid()}-"


def _sweep_stale(support: CgroupSupport) -> None:
    """Remove empty groups that an lmaudit process which no longer exists left behind (killed mid-run)."""
    for parent in {support.memory_parent, support.pids_parent} - {None}:
        for child in parent.glob("lmaudit-*-*"):  # type: ignore[union-attr]
            pid = child.name.split("-")[1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                try:
                    child.rmdir()
                except OSError:
                    pass


class SandboxCgroup:
    """The group(s) of one sandbox: made before it starts, joined by its driver, removed after it ends."""

    def __init__(self, support: CgroupSupport, memory_bytes: int, max_tasks: int):
        assert support.version is not None and support.memory_parent is not None
        self.version = support.version
        name = f"{_prefix()}{next(_names)}"
        self.directories: list[Path] = []
        try:
            memory = support.memory_parent / name
            memory.mkdir()
            self.directories.append(memory)
            if self.version == 2:
                (memory / "memory.max").write_text(str(memory_bytes))
                _write_if_present(memory / "memory.swap.max", "0")
                if support.pids_parent is not None:
                    (memory / "pids.max").write_text(str(max_tasks))
            else:
                (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
                _write_if_present(memory / "memory.memsw.limit_in_bytes", str(memory_bytes))  # no swap either
                if support.pids_parent is not None:
                    pids = support.pids_parent / name
                    pids.mkdir()
                    self.directories.append(pids)
                    (pids / "pids.max").write_text(str(max_tasks))
            self.fds = [os.open(d / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) for d in self.directories]
        except BaseException:
            self.remove()
            raise

    def close_fds(self) -> None:
        """The host's copies of the cgroup.procs descriptors (the sandbox has its own after it starts)."""
        for fd in getattr(self, "fds", []):
            os.close(fd)
        self.fds = []

    def oom_kills(self) -> int:
        """How many processes the kernel killed for the group's memory cap."""
        events = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in (self.directories[0] / events).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, IndexError, ValueError):
            pass
        return 0

    def remove(self) -> None:
        """Remove the group now, or as soon as its last process has gone (retried before later sandboxes)."""
        self.close_fds()
        with _leftovers_lock:
            _leftovers.extend(self.directories)
            self.directories = []
        remove_leftovers()


def _write_if_present(path: Path, value: str) -> None:
    if path.exists():
        path.write_text(value)


def remove_leftovers() -> None:
    with _leftovers_lock:
        remaining = []
        for directory in _leftovers:
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
            except OSError:  # EBUSY: processes still exiting
                remaining.append(directory)
        _leftovers[:] = remaining


atexit.register(remove_leftovers)
