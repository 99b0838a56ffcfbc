"""Which isolation this machine allows, and the command line that wraps a program in it.

Levels, strongest first:
- "bwrap": bubblewrap. Own network, pid, ipc and uts namespaces; a root that holds only what the interpreter
  needs (the system directories, /etc and the interpreter's own directories, all read-only: no /run, /var,
  /home, /root or /tmp of the host, so no socket file of theirs); a system-call filter (seccomp.py: no
  keyring, no new UNIX sockets, no namespaces, no io_uring); /proc/keys hidden; a fresh tmpfs working
  directory, capped in bytes and in files, as the only writable place. As root the program runs under a
  random unprivileged uid and the monitor (the part of the driver that judges it) under another; as a normal
  user bwrap makes a user namespace, and the monitor is made non-dumpable instead.
- "unshare": util-linux unshare. Own network and pid namespaces, but the file system is the host's (the
  program runs in a fresh temporary directory, with the caller's uid and permissions).
- "none": resource limits, a process group and a temporary directory only. Refused unless asked for.
All levels apply the resource limits, the output cap, the wall-clock limit, a clean environment and, where
the machine allows, a cgroup per sandbox (cgroups.py).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from lmaudit.sandbox import seccomp

LEVELS = ("bwrap", "unshare", "none")

# Random uids for root-run sandboxes come from this range: far above any real account, and distinct per
# program, so one sandbox's processes never count against another's process limit.
_UID_RANGE = (1_000_000, 1_900_000_000)

# Bound read-only into every bwrap sandbox (where they exist; symlinks such as /bin -> usr/bin are recreated).
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


@dataclass(frozen=True)
class Isolation:
    """An isolation level that was probed and works here, with what it protects."""

    level: str
    network_namespace: bool
    pid_namespace: bool
    minimal_root: bool  # only the interpreter's directories, read-only
    masked_home: bool
    process_limit: bool
    separate_uid: bool
    syscall_filter: bool
    tool: str | None  # path of bwrap / unshare
    workdir_mount: bool = True  # bwrap: the driver mounts the capped working directory (probed)

    def describe(self) -> dict[str, object]:
        return {"level": self.level, "network_namespace": self.network_namespace,
                "pid_namespace": self.pid_namespace, "read_only_root": self.minimal_root,
                "minimal_root": self.minimal_root, "masked_home": self.masked_home,
                "process_limit": self.process_limit, "separate_uid": self.separate_uid,
                "syscall_filter": self.syscall_filter, "tool": self.tool}


def running_as_root() -> bool:
    return os.geteuid() == 0


def isolation_for(level: str, workdir_mount: bool = True) -> Isolation:
    """The protections a level gives on this machine (whether it works is checked by a probe run)."""
    root = running_as_root()
    if level == "bwrap":
        return Isolation("bwrap", True, True, True, True, True, root, seccomp.supported(), shutil.which("bwrap"),
                         workdir_mount)
    if level == "unshare":
        # The program keeps the caller's uid (the host's interpreter may sit in a home only it can read), so
        # the process limit holds only in a user namespace's own count, and nothing separates the monitor.
        return Isolation("unshare", True, True, False, False, not root, False, False, shutil.which("unshare"),
                         False)
    if level == "none":
        return Isolation("none", False, False, False, False, False, False, False, None, False)
    raise ValueError(f"unknown isolation level {level!r}; valid: {', '.join(LEVELS)}")


# The program's own directory (and HOME): a tmpfs the driver mounts, capped in bytes and in files.
WORKDIR = "/tmp/work"


def _homes() -> list[Path]:
    """Home directories: never bound whole, nor any folder above one (they hold keys, tokens and caches)."""
    homes = []
    for candidate in (Path.home(), Path("/root"), Path("/home")):
        try:
            homes.append(candidate.resolve())
        except OSError:
            continue
    return homes


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


def interpreter_binds(interpreter: Interpreter) -> list[Path]:
    """The interpreter's directories to bind, outermost first: not those inside a system path (bound
    already), never "/", a home directory or a folder above one."""
    homes = _homes()
    system = [Path(p) for p in SYSTEM_PATHS]
    chosen: list[Path] = []
    for path in sorted((Path(p) for p in interpreter.directories), key=lambda p: len(p.parts)):
        if path == Path("/") or any(path == h or path in h.parents for h in homes):
            continue
        if any(path == s or s in path.parents for s in [*system, *chosen]):
            continue
        chosen.append(path)
    return chosen


def _bwrap_prefix(tool: str, interpreter: Interpreter, isolation: Isolation, tmp_bytes: int) -> list[str]:
    args = [tool]
    for system_path in SYSTEM_PATHS:
        if os.path.islink(system_path):
            args += ["--symlink", os.readlink(system_path), system_path]
        elif os.path.isdir(system_path):
            args += ["--ro-bind", system_path, system_path]
    args += ["--dev", "/dev", "--proc", "/proc"]
    if os.path.exists("/proc/keys"):  # descriptions of the keys the caller's session keyring holds
        args += ["--ro-bind", "/dev/null", "/proc/keys"]
    # /tmp holds the working directory's mount point and any interpreter folder that lives under /tmp; it is
    # read-only once they are in place. Without the driver's mount, /tmp itself is the size-capped workspace.
    tmp_size = 1 << 20 if isolation.workdir_mount else tmp_bytes
    args += ["--perms", "1777", "--size", str(tmp_size), "--tmpfs", "/tmp", "--perms", "1777", "--dir", WORKDIR]
    made: set[Path] = set()
    for path in interpreter_binds(interpreter):
        # Folders above it are made here, traversable (bwrap would copy a home's 0700 and lock the uid out).
        for parent in reversed(path.parents[:-1]):
            if parent not in made and not os.path.islink(parent) and str(parent) not in SYSTEM_PATHS:
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        args += ["--ro-bind", str(path), str(path)]
    if isolation.workdir_mount:
        args += ["--remount-ro", "/tmp"]
    args += ["--remount-ro", "/dev", "--remount-ro", "/",
             "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
             "--die-with-parent", "--new-session", "--chdir", WORKDIR]
    if running_as_root():
        # The driver needs these to mount the working directory and to switch to the sandbox uids; switching
        # to a non-zero uid drops every capability before the program starts.
        args += ["--cap-add", "CAP_SETUID,CAP_SETGID" + (",CAP_SYS_ADMIN" if isolation.workdir_mount else "")]
    else:
        args += ["--unshare-user"]
        if isolation.workdir_mount:  # in its own user namespace only; the driver drops it again
            args += ["--cap-add", "CAP_SYS_ADMIN"]
    return args


def _unshare_prefix(tool: str) -> list[str]:
    args = [tool, "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    if not running_as_root():
        args += ["--user", "--map-root-user"]
    return args + ["--"]


@dataclass(frozen=True)
class Launch:
    """How to start one program: argv, working directory, and what the driver must set up inside."""

    argv: list[str]
    cwd: str | None  # host directory to run in (None: the sandbox sets its own)
    home: str  # HOME inside the sandbox
    uids: tuple[int, int] | None  # (program, monitor) uids the driver switches to (when run as root)
    apply_process_limit: bool
    workdir_options: str | None  # tmpfs options of the working directory the driver mounts (bwrap)
    user_namespace: bool  # bwrap without root: drop capabilities by hand, make the monitor non-dumpable
    pass_fds: tuple[int, ...] = field(default=())  # descriptors the sandbox inherits (seccomp filter)


def _random_uids() -> tuple[int, int]:
    low, high = _UID_RANGE
    program = secrets.randbelow(high - low) + low
    monitor = program + 1 if program + 1 < high else program - 1
    return program, monitor


def launch(isolation: Isolation, interpreter: Interpreter, tmp_bytes: int, max_files: int,
           host_tmp: str | None) -> Launch:
    """The command prefix for a level; `host_tmp` is the program's fresh directory where no tmpfs is used.
    The caller closes the descriptors in `pass_fds` once the sandbox has started."""
    root = running_as_root()
    if isolation.level == "bwrap":
        uids = _random_uids() if root else None
        assert isolation.tool
        argv = _bwrap_prefix(isolation.tool, interpreter, isolation, tmp_bytes)
        fds: tuple[int, ...] = ()
        if isolation.syscall_filter:
            fds = (seccomp.filter_fd(),)
            argv += ["--seccomp", str(fds[0])]
        options = f"size={tmp_bytes},nr_inodes={max_files},mode=1777" if isolation.workdir_mount else None
        return Launch([*argv, "--"], None, WORKDIR, uids, True, options, not root, fds)
    assert host_tmp is not None
    if isolation.level == "unshare":
        assert isolation.tool
        return Launch(_unshare_prefix(isolation.tool), host_tmp, host_tmp, None, isolation.process_limit, None,
                      False)
    return Launch([], host_tmp, host_tmp, None, False, None, False)
