"""Run untrusted Python programs, each in a fresh sandbox, over a pool of worker threads.

Each program gets a new process group, (with bwrap or unshare) new namespaces and, where the machine allows, a
cgroup of its own; the host enforces the wall-clock limit and the output cap and kills the whole sandbox when
either is hit. Inside, the driver (_driver.py and the parts it is joined with) applies the CPU, memory,
file-size, open-file and process limits, and runs a program's tests in a monitor process apart from it.
"""

from __future__ import annotations

import marshal
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError, LmauditError
from lmaudit.sandbox import cgroups
from lmaudit.sandbox.enforced import enforced
from lmaudit.sandbox.isolation import (
    LEVELS,
    Interpreter,
    Isolation,
    interpreter_info,
    isolation_for,
    launch,
)
from lmaudit.sandbox.limits import Limits
from lmaudit.sandbox.supervise import ExecResult, kill_group, supervise

_DRIVER = "\n".join(Path(__file__).with_name(part).read_text()
                    for part in ("_wire.py", "_worker.py", "_monitor.py", "_driver.py"))
# Compiling the driver's source costs more than starting the interpreter, so each sandbox gets it compiled:
# by the sandbox's own interpreter (a code object is only valid for the version that made it), once.
_BOOTSTRAP = "import marshal, sys; exec(marshal.loads(bytes.fromhex(sys.argv[1])))"
_COMPILE = "import marshal, sys; sys.stdout.write(marshal.dumps(compile(sys.stdin.read(), '<string>', 'exec')).hex())"
_compiled: dict[str, str] = {}
_compiled_lock = threading.Lock()


def _driver_code(interpreter: str) -> str:
    with _compiled_lock:
        if interpreter not in _compiled:
            _compiled[interpreter] = subprocess.run([interpreter, "-I", "-S", "-B", "-c", _COMPILE], input=_DRIVER,
                                                    capture_output=True, text=True, timeout=60, check=True).stdout
        return _compiled[interpreter]
# One math-library thread per process: thread pools sized to the host's cores would hit the process limit.
_CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class SandboxError(LmauditError):
    """No acceptable isolation, or a sandbox that cannot start."""


@dataclass(frozen=True)
class Program:
    """Untrusted `code`, judged by trusted `tests` that run in the sandbox's monitor process, out of its reach.

    `context` is trusted code run before the tests, next to them (HumanEval's prompt, for its helper
    functions). `uses` names the program's top-level names the tests may use (None: all of them); each comes
    over as plain data, as the monitor's own copy of a standard-library module, or as a reference into the
    program's process. Without tests (`Sandbox.run("source")`) a program judges itself: it passes when it runs
    to its end.
    """

    code: str
    tests: str | None = None
    context: str = ""
    uses: tuple[str, ...] | None = None

    def job(self) -> bytes:
        return marshal.dumps({"code": self.code, "tests": self.tests, "context": self.context,
                              "uses": self.uses})


def _as_program(item: str | Program) -> Program:
    return item if isinstance(item, Program) else Program(item)


class Sandbox:
    """Runs programs under the strongest isolation available (or the one asked for).

    `isolation="auto"` tries bwrap, then unshare; "none" (no isolation) needs `allow_unsandboxed=True`.
    Construction probes the chosen level by running a trivial program, so a broken setup fails early.
    `workers` programs run at once; run_many starts up to `prestart` sandboxes per worker ahead of need.
    """

    def __init__(self, limits: Limits | None = None, *, isolation: str = "auto", workers: int = 2,
                 allow_unsandboxed: bool = False, interpreter: str | None = None, prestart: int = 2):
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        if prestart < 1:
            raise ConfigError(f"prestart must be at least 1, got {prestart}")
        if isolation not in ("auto", *LEVELS):
            raise ConfigError(f"unknown isolation '{isolation}'; valid: auto, {', '.join(LEVELS)}")
        self.limits = limits or Limits()
        self.workers, self.prestart = workers, prestart
        self.interpreter = interpreter or sys.executable
        if shutil.which(self.interpreter) is None:
            raise ConfigError(f"sandbox interpreter not found or not executable: {self.interpreter}")
        self.fallback_reasons: list[str] = []  # why stronger levels were not used
        self.notes: list[str] = []  # limits this level could not enforce here, and why
        self.cgroups = cgroups.detect()
        self.isolation = self._choose(isolation, allow_unsandboxed)

    def _choose(self, wanted: str, allow_unsandboxed: bool) -> Isolation:
        candidates = [wanted] if wanted != "auto" else ["bwrap", "unshare"]
        failures = self.fallback_reasons
        for level in candidates:
            if level == "none" and not allow_unsandboxed:
                raise SandboxError("isolation 'none' runs untrusted code with no isolation; pass "
                                   "allow_unsandboxed=True (--allow-unsandboxed) if you really mean it")
            isolation = isolation_for(level)
            problem = _probe(isolation, self.interpreter, self.cgroups)
            # A setup step this machine refuses (mounting the capped working directory, joining a cgroup)
            # costs that one limit, not the whole level: say so and probe again without it.
            for _ in range(2):
                if problem is None or not problem.startswith("SandboxSetup("):
                    break
                if "(cgroup:" in problem and self.cgroups.version is not None:
                    self.notes.append(f"cgroups unusable from inside the sandbox: {problem}")
                    self.cgroups = cgroups.CgroupSupport(None, None, None, problem)
                elif isolation.workdir_mount:
                    self.notes.append(f"working-directory mount refused, so no file-count cap: {problem}")
                    isolation = replace(isolation, workdir_mount=False)
                problem = _probe(isolation, self.interpreter, self.cgroups)
            if problem is None:
                if failures:
                    warnings.warn(f"sandbox: using '{level}' isolation; stronger levels failed: "
                                  + "; ".join(failures), RuntimeWarning, stacklevel=3)
                return isolation
            failures.append(f"{level}: {problem}")
        if wanted == "auto" and allow_unsandboxed:
            warnings.warn("sandbox: running untrusted code WITHOUT isolation: " + "; ".join(failures),
                          RuntimeWarning, stacklevel=3)
            return isolation_for("none")
        raise SandboxError("no sandbox available (" + "; ".join(failures) + "). Install bubblewrap "
                           "(apt-get install bubblewrap) or pass allow_unsandboxed=True to run untrusted "
                           "code without isolation")

    def describe(self) -> dict[str, Any]:
        """What is in force, for the run manifest and `lmaudit sandbox info`. Nothing in it varies between two
        processes on one machine (a resumed run must describe its sandbox the same way)."""
        return {"isolation": self.isolation.describe(), "enforced": self.enforced(),
                "fallback_reasons": list(self.fallback_reasons), "notes": list(self.notes),
                "limits": asdict(self.limits), "workers": self.workers, "prestart": self.prestart,
                "interpreter": self.interpreter}

    def enforced(self) -> dict[str, dict[str, Any]]:
        """Each cap and guard, with the mechanism that enforces it here (or "none" and the fallback)."""
        return enforced(self.limits, self.isolation, self.cgroups)

    def run(self, program: str | Program) -> ExecResult:
        return _start(self.isolation, self._interpreter(), self.limits, self.cgroups).finish(_as_program(program))

    def run_many(self, programs: Sequence[str | Program]) -> list[ExecResult]:
        """Run programs in parallel, `workers` at a time, one fresh sandbox each; results in input order.

        The calling thread starts sandboxes ahead of need (up to `prestart` per worker), which wait for their
        program on stdin, so start-up overlaps with execution; no untrusted code runs before its sandbox is
        handed a program. Starting them all from this one thread matters: bwrap's --die-with-parent ties
        a sandbox's life to the thread that started it.
        """
        if len(programs) <= 1:
            return [self.run(p) for p in programs]
        jobs_in_order = [_as_program(p) for p in programs]
        results: list[ExecResult | None] = [None] * len(programs)
        jobs: queue.Queue[tuple[int, _Started] | None] = queue.Queue(maxsize=self.workers * self.prestart)
        failures: list[BaseException] = []
        interpreter = self._interpreter()

        def worker() -> None:
            while (job := jobs.get()) is not None:
                index, sandbox = job
                if failures:
                    sandbox.discard()
                    continue
                try:
                    results[index] = sandbox.finish(jobs_in_order[index])
                except BaseException as exc:  # noqa: BLE001  re-raised in the calling thread
                    failures.append(exc)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(self.workers, len(programs)))]
        for thread in threads:
            thread.start()
        try:
            for index in range(len(programs)):
                if failures:
                    break
                jobs.put((index, _start(self.isolation, interpreter, self.limits, self.cgroups)))
        except BaseException as exc:  # e.g. Ctrl-C: sandboxes already started are discarded, not run
            failures.append(exc)
            raise
        finally:
            for _ in threads:
                jobs.put(None)
            for thread in threads:
                thread.join()
        if failures:
            raise failures[0]
        return results  # type: ignore[return-value]

    def _interpreter(self) -> Interpreter:
        return interpreter_info(self.interpreter)


_probe_cache: dict[tuple[Any, ...], str | None] = {}
_probe_lock = threading.Lock()


def _probe(isolation: Isolation, interpreter: str, groups: cgroups.CgroupSupport) -> str | None:
    """None if a trivial program passes under `isolation`, else why not (cached per configuration). A setup step
    the driver could not take comes back as its error type, `SandboxSetup(<step>:errno=<n>)`."""
    key = (isolation, interpreter, groups.version)
    with _probe_lock:
        if key not in _probe_cache:
            if isolation.level != "none" and isolation.tool is None:
                _probe_cache[key] = f"'{isolation.level}' not found on PATH"
            else:
                try:
                    result = _start(isolation, interpreter_info(interpreter), Limits(wall_seconds=30),
                                    groups).finish(Program("pass\n", "assert sum(range(3)) == 3\n"))
                except (OSError, subprocess.SubprocessError, ValueError) as exc:
                    _probe_cache[key] = str(exc)
                else:
                    if result.passed:
                        _probe_cache[key] = None
                    elif (result.error_type or "").startswith("SandboxSetup("):
                        _probe_cache[key] = result.error_type
                    else:
                        _probe_cache[key] = (f"probe program ended with {result.error_type or result.status}: "
                                             f"{result.stderr.strip()[-300:]}")
        return _probe_cache[key]


class _Started:
    """A sandbox that is starting or waiting for its program on stdin."""

    def __init__(self, proc: subprocess.Popen[bytes], status_read: int, host_tmp: str | None, limits: Limits,
                 group: cgroups.SandboxCgroup | None):
        self.proc, self.status_read, self.host_tmp, self.limits, self.group = proc, status_read, host_tmp, limits, group

    def finish(self, program: Program) -> ExecResult:
        """Hand over the program and supervise it to the end; the wall-clock limit starts now."""
        try:
            result = supervise(self.proc, program.job(), self.status_read, self.limits.wall_seconds,
                               self.limits.max_output_bytes, self.limits.stderr_chars)
            if self.group is not None and not result.passed and self.group.oom_kills():
                result = replace(result, status="error", error_type="MemoryLimitExceeded")
            return result
        finally:
            self._cleanup()

    def discard(self) -> None:
        kill_group(self.proc.pid)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        os.close(self.status_read)
        self.proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        if self.group is not None:
            self.group.remove()
            self.group = None
        if self.host_tmp is not None:
            _remove_tree(self.host_tmp)
            self.host_tmp = None


def _start(isolation: Isolation, interpreter: Interpreter, limits: Limits,
           groups: cgroups.CgroupSupport) -> _Started:
    host_tmp = None if isolation.level == "bwrap" else tempfile.mkdtemp(prefix="lmaudit-sandbox-")
    group = None
    inherited: tuple[int, ...] = ()
    try:
        if groups.version is not None:
            # Two tasks beyond the program's own: the driver's monitor and (unshare) its init.
            group = cgroups.SandboxCgroup(groups, limits.total_memory_bytes, limits.max_processes + 2)
        how = launch(isolation, interpreter, limits.tmp_bytes, limits.max_files, host_tmp)
        inherited = how.pass_fds
        status_read, status_write = os.pipe()
        try:
            settings = {
                "status_fd": status_write, "cgroup_fds": group.fds if group else [],
                "workdir": (how.home, how.workdir_options) if how.workdir_options else None,
                "user_namespace": how.user_namespace, "uids": how.uids,
                "rlimits": [(n, s, h) for n, (s, h) in limits.rlimits(how.apply_process_limit).items()],
                "sys_path": list(interpreter.site_entries),
            }
            argv = [*how.argv, interpreter.path, "-I", "-S", "-B", "-c", _BOOTSTRAP, _driver_code(interpreter.path),
                    marshal.dumps(settings).hex()]
            env = {**_CLEAN_ENV, "HOME": how.home, "TMPDIR": how.home}
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    pass_fds=(status_write, *settings["cgroup_fds"], *inherited), cwd=how.cwd,
                                    env=env, start_new_session=True)
        except BaseException:
            os.close(status_read)
            raise
        finally:
            os.close(status_write)
    except BaseException:
        if group is not None:
            group.remove()
        if host_tmp is not None:
            _remove_tree(host_tmp)
        raise
    finally:
        for fd in inherited:
            os.close(fd)
        if group is not None:
            group.close_fds()  # the sandbox has its own copies now
    return _Started(proc, status_read, host_tmp, limits, group)


def _remove_tree(path: str) -> None:
    # A program may leave read-only directories behind; make them writable again before removing.
    def unlock(func: Any, target: str, _exc: Any) -> None:
        os.chmod(os.path.dirname(target), 0o700)
        func(target)

    shutil.rmtree(path, onerror=unlock)
