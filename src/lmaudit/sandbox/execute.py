"""Run untrusted Python programs, each in a fresh sandbox, over a pool of worker threads.

Each program gets a new process group and (with bwrap or unshare) new namespaces; the host enforces the
wall-clock limit and the output cap and kills the whole sandbox when either is hit. Inside, the driver
(_driver.py) applies the CPU, memory, file-size, open-file and process limits before the program starts.
"""

from __future__ import annotations

import math
import os
import queue
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from lmaudit.core.errors import ConfigError, LmauditError
from lmaudit.sandbox.isolation import LEVELS, Interpreter, Isolation, interpreter_info, isolation_for, launch

Status = Literal["passed", "failed", "timeout", "error"]

_DRIVER = (Path(__file__).with_name("_driver.py")).read_text()
# One math-library thread per process: thread pools sized to the host's cores would hit the process limit.
_CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class SandboxError(LmauditError):
    """No acceptable isolation, or a sandbox that cannot start."""


@dataclass(frozen=True)
class Limits:
    """Per-program limits. CPU time defaults to the wall-clock limit."""

    wall_seconds: float = 10.0
    cpu_seconds: float | None = None
    memory_bytes: int = 1 << 30  # address space of each process
    max_processes: int = 32  # processes and threads of the sandbox's uid
    max_output_bytes: int = 1 << 20  # stdout + stderr; more kills the program
    max_file_bytes: int = 16 << 20  # largest file it may write
    tmp_bytes: int = 64 << 20  # size of the private /tmp (bwrap)
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


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one program: passed, failed (an assertion), timeout, or error (anything else)."""

    status: Status
    error_type: str | None  # exception name, "WallTimeLimit", "CPUTimeLimit", "OutputLimitExceeded", ...
    stderr: str  # the last `stderr_chars` characters
    seconds: float  # wall time, sandbox start-up included
    exit_code: int | None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


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
        self.isolation = self._choose(isolation, allow_unsandboxed)

    def _choose(self, wanted: str, allow_unsandboxed: bool) -> Isolation:
        candidates = [wanted] if wanted != "auto" else ["bwrap", "unshare"]
        failures = self.fallback_reasons
        for level in candidates:
            if level == "none" and not allow_unsandboxed:
                raise SandboxError("isolation 'none' runs untrusted code with no isolation; pass "
                                   "allow_unsandboxed=True (--allow-unsandboxed) if you really mean it")
            problem = _probe(level, self.interpreter)
            if problem is None:
                if failures:
                    warnings.warn(f"sandbox: using '{level}' isolation; stronger levels failed: "
                                  + "; ".join(failures), RuntimeWarning, stacklevel=3)
                return isolation_for(level)
            failures.append(f"{level}: {problem}")
        if wanted == "auto" and allow_unsandboxed:
            warnings.warn("sandbox: running untrusted code WITHOUT isolation: " + "; ".join(failures),
                          RuntimeWarning, stacklevel=3)
            return isolation_for("none")
        raise SandboxError("no sandbox available (" + "; ".join(failures) + "). Install bubblewrap "
                           "(apt-get install bubblewrap) or pass allow_unsandboxed=True to run untrusted "
                           "code without isolation")

    def describe(self) -> dict[str, Any]:
        """What is in force, for the run manifest."""
        return {"isolation": self.isolation.describe(), "fallback_reasons": list(self.fallback_reasons),
                "limits": asdict(self.limits), "workers": self.workers, "prestart": self.prestart,
                "interpreter": self.interpreter}

    def run(self, program: str) -> ExecResult:
        return _start(self.isolation, self._interpreter(), self.limits).finish(program)

    def run_many(self, programs: Sequence[str]) -> list[ExecResult]:
        """Run programs in parallel, `workers` at a time, one fresh sandbox each; results in input order.

        The calling thread starts sandboxes ahead of need (up to `prestart` per worker), which wait for their
        program on stdin, so start-up overlaps with execution; no untrusted code runs before its sandbox is
        handed a program. Starting them all from this one thread matters: bwrap's --die-with-parent ties
        a sandbox's life to the thread that started it.
        """
        if len(programs) <= 1:
            return [self.run(p) for p in programs]
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
                    results[index] = sandbox.finish(programs[index])
                except BaseException as exc:  # noqa: BLE001  re-raised in the calling thread
                    failures.append(exc)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(self.workers, len(programs)))]
        for thread in threads:
            thread.start()
        try:
            for index in range(len(programs)):
                if failures:
                    break
                jobs.put((index, _start(self.isolation, interpreter, self.limits)))
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


_probe_cache: dict[tuple[str, str], str | None] = {}
_probe_lock = threading.Lock()


def _probe(level: str, interpreter: str) -> str | None:
    """None if a trivial program passes under `level`, else why not (cached per level and interpreter)."""
    key = (level, interpreter)
    with _probe_lock:
        if key not in _probe_cache:
            isolation = isolation_for(level)
            if level != "none" and isolation.tool is None:
                _probe_cache[key] = f"'{level}' not found on PATH"
            else:
                try:
                    result = _start(isolation, interpreter_info(interpreter), Limits(wall_seconds=30)).finish("pass\n")
                except (OSError, subprocess.SubprocessError, ValueError) as exc:
                    _probe_cache[key] = str(exc)
                else:
                    _probe_cache[key] = None if result.passed else (
                        f"probe program ended with {result.error_type or result.status}: "
                        f"{result.stderr.strip()[-300:]}")
        return _probe_cache[key]


class _Started:
    """A sandbox that is starting or waiting for its program on stdin."""

    def __init__(self, proc: subprocess.Popen[bytes], status_read: int, host_tmp: str | None, limits: Limits):
        self.proc, self.status_read, self.host_tmp, self.limits = proc, status_read, host_tmp, limits

    def finish(self, program: str) -> ExecResult:
        """Hand over the program and supervise it to the end; the wall-clock limit starts now."""
        try:
            return _supervise(self.proc, program.encode("utf-8", "surrogatepass"), self.status_read, self.limits)
        finally:
            self._cleanup()

    def discard(self) -> None:
        _kill_group(self.proc.pid)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        os.close(self.status_read)
        self.proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        if self.host_tmp is not None:
            _remove_tree(self.host_tmp)
            self.host_tmp = None


def _start(isolation: Isolation, interpreter: Interpreter, limits: Limits) -> _Started:
    host_tmp = None if isolation.level == "bwrap" else tempfile.mkdtemp(prefix="lmaudit-sandbox-")
    try:
        how = launch(isolation, interpreter, limits.tmp_bytes, host_tmp)
        rlimits = [f"{name}={soft}:{hard}" for name, (soft, hard) in limits.rlimits(how.apply_process_limit).items()]
        status_read, status_write = os.pipe()
        try:
            argv = [*how.argv, interpreter.path, "-I", "-S", "-B", "-c", _DRIVER, str(status_write),
                    "-" if how.uid is None else str(how.uid), *rlimits, *interpreter.site_entries]
            env = {**_CLEAN_ENV, "HOME": how.home, "TMPDIR": how.home}
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    pass_fds=(status_write,), cwd=how.cwd, env=env, start_new_session=True)
        except BaseException:
            os.close(status_read)
            raise
        finally:
            os.close(status_write)
    except BaseException:
        if host_tmp is not None:
            _remove_tree(host_tmp)
        raise
    return _Started(proc, status_read, host_tmp, limits)


def _remove_tree(path: str) -> None:
    # A program may leave read-only directories behind; make them writable again before removing.
    def unlock(func: Any, target: str, _exc: Any) -> None:
        os.chmod(os.path.dirname(target), 0o700)
        func(target)

    shutil.rmtree(path, onerror=unlock)


def _supervise(proc: subprocess.Popen[bytes], program: bytes, status_read: int, limits: Limits) -> ExecResult:
    """Feed the program, collect output and status until it ends, the deadline passes or the output cap is hit."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    start = time.monotonic()
    deadline = start + limits.wall_seconds
    selector = selectors.DefaultSelector()
    os.set_blocking(proc.stdin.fileno(), False)
    selector.register(proc.stdin, selectors.EVENT_WRITE, "in")
    selector.register(proc.stdout, selectors.EVENT_READ, "out")
    selector.register(proc.stderr, selectors.EVENT_READ, "err")
    selector.register(status_read, selectors.EVENT_READ, "status")
    unsent = memoryview(program)
    stderr_tail = bytearray()
    status_bytes = bytearray()
    output_bytes = 0
    stopped: str | None = None
    exited_at: float | None = None
    try:
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline:
                stopped = "WallTimeLimit"
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > 0.5:
                break  # a leftover process holds the pipes open (only possible without a pid namespace)
            for key, _ in selector.select(min(deadline - now, 0.1)):
                if key.data == "in":
                    try:
                        unsent = unsent[os.write(key.fd, unsent[:65536]):]
                    except BrokenPipeError:  # the sandbox died before reading it all; its exit says why
                        unsent = unsent[:0]
                    if not unsent:
                        selector.unregister(key.fileobj)
                        proc.stdin.close()
                    continue
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                if key.data == "status":
                    status_bytes += data[: 4096 - len(status_bytes)]
                    continue
                output_bytes += len(data)
                if key.data == "err":
                    stderr_tail += data
                    del stderr_tail[: max(0, len(stderr_tail) - 4 * limits.stderr_chars)]
            if output_bytes > limits.max_output_bytes:
                stopped = "OutputLimitExceeded"
                break
    finally:
        selector.close()
        _kill_group(proc.pid)  # also reaps stragglers in the program's process group
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()
        os.close(status_read)
    try:
        exit_code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # unkillable (e.g. stuck in the kernel): report and move on
        exit_code = None
    seconds = time.monotonic() - start
    text = stderr_tail.decode("utf-8", "replace")
    stderr = text[-limits.stderr_chars:]
    if len(text) > limits.stderr_chars:
        stderr = "..." + stderr
    status, error_type = _classify(stopped, bytes(status_bytes), exit_code)
    return ExecResult(status, error_type, stderr, round(seconds, 4), exit_code)


def _classify(stopped: str | None, status_bytes: bytes, exit_code: int | None) -> tuple[Status, str | None]:
    if stopped == "WallTimeLimit":
        return "timeout", stopped
    if stopped:
        return "error", stopped
    reported, _, error_type = status_bytes.decode("utf-8", "replace").partition(" ")
    # The driver reports only after the program returns; a passing report also needs a clean exit.
    if reported == "passed" and exit_code == 0:
        return "passed", None
    if reported in ("failed", "error") and error_type:
        return reported, error_type  # type: ignore[return-value]
    if exit_code is None:
        return "error", "Unkillable"
    # Namespace wrappers report a signal as 128 + number; a direct child as a negative number.
    signum = -exit_code if exit_code < 0 else exit_code - 128 if exit_code > 128 else 0
    if signum == signal.SIGXCPU:
        return "timeout", "CPUTimeLimit"
    if signum:
        return "error", f"Killed({_signal_name(signum)})"
    return "error", f"ExitedBeforeTestsFinished(exit code {exit_code})"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass

