"""Which isolation this machine allows, and the command line that wraps a program in it.

Levels, strongest first:
- "bwrap": bubblewrap. Own network, pid, ipc and uts namespaces; the whole file system read-only; a fresh
  size-capped tmpfs at /tmp as the only writable place; home directories masked; a separate unprivileged uid
  (a random one when lmaudit runs as root, the caller's uid in a user namespace otherwise) so the process
  limit holds.
- "unshare": util-linux unshare. Own network and pid namespaces, but the file system is the host's (the
  program runs in a fresh temporary directory, with the caller's permissions); the process limit holds only
  when lmaudit does not run as root.
- "none": resource limits, a process group and a temporary directory only. Refused unless asked for.
All levels apply the resource limits, the output cap, the wall-clock limit and a clean environment.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LEVELS = ("bwrap", "unshare", "none")

# Random uids for root-run sandboxes come from this range: far above any real account, and distinct per
# program, so one sandbox's processes never count against another's process limit.
_UID_RANGE = (1_000_000, 1_900_000_000)


@dataclass(frozen=True)
class Isolation:
    """An isolation level that was probed and works here, with what it protects."""

    level: str
    network_namespace: bool
    pid_namespace: bool
    read_only_root: bool
    masked_home: bool
    process_limit: bool
    separate_uid: bool
    tool: str | None  # path of bwrap / unshare

    def describe(self) -> dict[str, object]:
        return {"level": self.level, "network_namespace": self.network_namespace,
                "pid_namespace": self.pid_namespace, "read_only_root": self.read_only_root,
                "masked_home": self.masked_home, "process_limit": self.process_limit,
                "separate_uid": self.separate_uid, "tool": self.tool}


def running_as_root() -> bool:
    return os.geteuid() == 0


def isolation_for(level: str) -> Isolation:
    """The protections a level gives on this machine (whether it works is checked by a probe run)."""
    root = running_as_root()
    if level == "bwrap":
        return Isolation("bwrap", True, True, True, True, True, True, shutil.which("bwrap"))
    if level == "unshare":
        return Isolation("unshare", True, True, False, False, not root, False, shutil.which("unshare"))
    if level == "none":
        return Isolation("none", False, False, False, False, False, False, None)
    raise ValueError(f"unknown isolation level {level!r}; valid: {', '.join(LEVELS)}")


# The program's own directory (and HOME): empty, on the sandbox's tmpfs, apart from the read-only re-binds that
# the interpreter may need under /tmp.
WORKDIR = "/tmp/work"


def _masked_roots() -> list[Path]:
    """Home directories: hidden behind an empty read-only tmpfs (they hold keys, tokens and caches)."""
    roots: list[Path] = []
    for candidate in (Path.home(), Path("/root"), Path("/home")):
        try:
            resolved = candidate.resolve()
        except OSError:
            continue
        if resolved == Path("/") or not resolved.is_dir():
            continue
        if any(resolved == r or r in resolved.parents for r in roots):
            continue
        roots = [r for r in roots if resolved not in r.parents] + [resolved]
    return roots


@dataclass(frozen=True)
class Interpreter:
    """What the sandboxed interpreter needs: directories to keep reachable, and the sys.path entries `site`
    would add (the sandbox starts Python with -S, which saves start-up time, and adds them itself)."""

    path: str
    directories: tuple[str, ...]
    site_entries: tuple[str, ...]


_QUERY = ("import sys, json; base = list(sys.path); import site; site.main(); "
          "print(json.dumps([[sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path], "
          "[p for p in sys.path if p not in base]]))")
_interpreters: dict[str, Interpreter] = {}


def interpreter_info(interpreter: str) -> Interpreter:
    if interpreter in _interpreters:
        return _interpreters[interpreter]
    out = subprocess.run([interpreter, "-I", "-S", "-c", _QUERY], capture_output=True, text=True, timeout=60,
                         check=True)
    everything, site_entries = json.loads(out.stdout)
    paths = {p for p in everything if p and os.path.isabs(p) and os.path.isdir(p)}
    # Every hop of the executable's symlink chain must be reachable.
    link = Path(os.path.abspath(interpreter))
    for _ in range(40):
        paths.add(str(link.parent))
        if not link.is_symlink():
            break
        link = Path(os.path.normpath(link.parent / os.readlink(link)))
    directories = tuple(sorted({os.path.realpath(p) for p in paths} | paths))
    info = Interpreter(interpreter, directories, tuple(p for p in site_entries if os.path.isabs(p)))
    _interpreters[interpreter] = info
    return info


def _bwrap_prefix(tool: str, interpreter: Interpreter, tmp_bytes: int) -> list[str]:
    args = [tool, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp", "--perms", "1777", "--dir", WORKDIR,
            "--remount-ro", "/dev"]
    masked = _masked_roots()
    for root in masked:
        args += ["--perms", "0755", "--tmpfs", str(root)]
    # Put back, read-only, what the interpreter needs from inside a masked home (e.g. pyenv, a venv) or from
    # under /tmp, which the sandbox's own tmpfs hides (a checkout or venv in /tmp). Never the home directory
    # itself or a folder above it: that would undo the masking.
    hidden = [*masked, Path("/tmp")]
    home = Path.home().resolve()
    needed = [Path(p) for p in interpreter.directories if Path(p) != home and Path(p) not in home.parents]
    rebinds: list[Path] = []
    for path in sorted(needed, key=lambda p: len(p.parts)):
        if any(path == r or r in path.parents for r in rebinds):
            continue
        if any(root in path.parents for root in hidden):
            rebinds.append(path)
    for path in rebinds:
        root = next(r for r in hidden if r in path.parents)
        for parent in reversed(path.parents):
            if root in parent.parents:
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", str(path), str(path)]
    for root in masked:
        args += ["--remount-ro", str(root)]
    args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
             "--die-with-parent", "--new-session", "--chdir", WORKDIR]
    if running_as_root():
        # Keep only the right to switch to the sandbox uid; the driver drops it before running the program.
        args += ["--cap-add", "CAP_SETUID,CAP_SETGID"]
    else:
        args += ["--unshare-user"]
    return args + ["--"]


def _unshare_prefix(tool: str) -> list[str]:
    args = [tool, "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    if not running_as_root():
        args += ["--user", "--map-root-user"]
    return args + ["--"]


@dataclass(frozen=True)
class Launch:
    """How to start one program: argv, working directory, uid switch and the process limit to apply."""

    argv: list[str]
    cwd: str | None  # host directory to run in (None: the sandbox sets its own)
    home: str  # HOME inside the sandbox
    uid: int | None  # uid the driver switches to (root-run bwrap only)
    apply_process_limit: bool


def launch(isolation: Isolation, interpreter: Interpreter, tmp_bytes: int, host_tmp: str | None) -> Launch:
    """The command prefix for a level; `host_tmp` is the program's fresh directory where no tmpfs is used."""
    if isolation.level == "bwrap":
        assert isolation.tool
        uid = secrets.randbelow(_UID_RANGE[1] - _UID_RANGE[0]) + _UID_RANGE[0] if running_as_root() else None
        return Launch(_bwrap_prefix(isolation.tool, interpreter, tmp_bytes), None, WORKDIR, uid, True)
    assert host_tmp is not None
    if isolation.level == "unshare":
        assert isolation.tool
        return Launch(_unshare_prefix(isolation.tool), host_tmp, host_tmp, None, isolation.process_limit)
    return Launch([], host_tmp, host_tmp, None, False)
