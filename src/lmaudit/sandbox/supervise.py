"""The host's side of one run: feed the job, read output and status against the deadline and the output cap,
then kill the sandbox and say how it ended."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["passed", "failed", "timeout", "error"]


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one program: passed, failed (an assertion), timeout, or error (anything else)."""

    status: Status
    error_type: str | None  # exception name, "WallTimeLimit", "CPUTimeLimit", "MemoryLimitExceeded", ...
    stderr: str  # the last `stderr_chars` characters
    seconds: float  # wall time, sandbox start-up included
    exit_code: int | None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def supervise(proc: subprocess.Popen[bytes], job: bytes, status_read: int, wall_seconds: float,
              max_output_bytes: int, stderr_chars: int) -> ExecResult:
    """Feed the job, collect output and status until it ends, the deadline passes or the output cap is hit."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    start = time.monotonic()
    deadline = start + wall_seconds
    selector = selectors.DefaultSelector()
    os.set_blocking(proc.stdin.fileno(), False)
    selector.register(proc.stdin, selectors.EVENT_WRITE, "in")
    selector.register(proc.stdout, selectors.EVENT_READ, "out")
    selector.register(proc.stderr, selectors.EVENT_READ, "err")
    selector.register(status_read, selectors.EVENT_READ, "status")
    unsent = memoryview(job)
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
                    del stderr_tail[: max(0, len(stderr_tail) - 4 * stderr_chars)]
            if output_bytes > max_output_bytes:
                stopped = "OutputLimitExceeded"
                break
    finally:
        selector.close()
        kill_group(proc.pid)  # also reaps stragglers in the program's process group
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()
        os.close(status_read)
    try:
        exit_code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # unkillable (e.g. stuck in the kernel): report and move on
        exit_code = None
    seconds = time.monotonic() - start
    text = stderr_tail.decode("utf-8", "replace")
    stderr = text[-stderr_chars:]
    if len(text) > stderr_chars:
        stderr = "..." + stderr
    status, error_type = classify(stopped, bytes(status_bytes), exit_code)
    return ExecResult(status, error_type, stderr, round(seconds, 4), exit_code)


def classify(stopped: str | None, status_bytes: bytes, exit_code: int | None) -> tuple[Status, str | None]:
    """The outcome from what the host saw. Only the monitor writes the status pipe; the program never holds it."""
    if stopped == "WallTimeLimit":
        return "timeout", stopped
    if stopped:
        return "error", stopped
    reported, _, error_type = status_bytes.decode("utf-8", "replace").partition(" ")
    if reported == "passed" and exit_code == 0:
        return "passed", None
    if reported == "timeout" and error_type:
        return "timeout", error_type
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


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
