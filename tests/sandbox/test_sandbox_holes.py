"""The holes a hostile review found (issue 14, sandbox items 1-4), each reproduced by a program of its own.

Every test here failed before the fix: the session keyring was readable, UNIX sockets in /run, /var/run and a
directory re-bound for the interpreter were connectable, nothing capped a sandbox's total memory or its file
count, and four programs were scored as passes without solving the problem.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from lmaudit.codeeval import humaneval
from lmaudit.core.types import Generation
from lmaudit.sandbox import Limits, Program, Sandbox

REPO = Path(__file__).resolve().parents[2]
SECRET = "keyring-canary-" + uuid.uuid4().hex
FAST = Limits(wall_seconds=5, cpu_seconds=3, memory_bytes=512 << 20)


# -- 1. the kernel keyring ------------------------------------------------------------------------------

_KEYRING_HOST = """
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_add_key, SYS_keyctl = {"x86_64": (248, 250), "aarch64": (217, 219)}[__import__("platform").machine()]
# A fresh session keyring for this process only, so the test leaves no key behind in anyone else's.
assert libc.syscall(SYS_keyctl, 1, b"lmaudit-keyring-test") > 0  # KEYCTL_JOIN_SESSION_KEYRING
secret = sys.argv[1].encode()
assert libc.syscall(SYS_add_key, b"user", b"lmaudit-canary", secret, len(secret), -3) > 0  # @s
sys.path.insert(0, sys.argv[2])
from lmaudit.sandbox import Limits, Program, Sandbox
print(json.dumps(Sandbox(Limits(wall_seconds=10), isolation="bwrap", workers=1).run(sys.argv[3]).to_dict()))
"""

_KEYRING_THIEF = """
import ctypes, platform, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_keyctl = {"x86_64": 250, "aarch64": 219}[platform.machine()]
found = libc.syscall(SYS_keyctl, 10, -3, b"user", b"lmaudit-canary", 0)  # KEYCTL_SEARCH in @s
sys.stderr.write(f"search: {found} errno {ctypes.get_errno()}\\n")
if found > 0:
    buffer = ctypes.create_string_buffer(256)
    size = libc.syscall(SYS_keyctl, 11, found, buffer, 256)  # KEYCTL_READ
    sys.stderr.write(f"read: {buffer.raw[:max(size, 0)].decode()}\\n")
sys.stderr.write(open("/proc/keys").read() if __import__("os").path.exists("/proc/keys") else "no /proc/keys\\n")
"""


def test_a_key_in_the_callers_session_keyring_is_out_of_reach():
    done = subprocess.run([sys.executable, "-c", _KEYRING_HOST, SECRET, str(REPO / "src"), _KEYRING_THIEF],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert SECRET not in result["stderr"], result["stderr"]
    assert "lmaudit-canary" not in result["stderr"]  # not even the key's description (/proc/keys)
    assert "search: -1 errno 1" in result["stderr"], result["stderr"]  # keyctl itself is refused (EPERM)


# -- 2. UNIX sockets in the file system -----------------------------------------------------------------

class _UnixServer:
    """A world-connectable stream socket and datagram socket at paths of the test's own; records what arrives."""

    def __init__(self, directory: Path):
        tag = uuid.uuid4().hex[:8]
        self.stream_path, self.datagram_path = directory / f"lmaudit-{tag}.sock", directory / f"lmaudit-{tag}.dgram"
        self.stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.stream.bind(str(self.stream_path))
        self.stream.listen()
        self.datagram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.datagram.bind(str(self.datagram_path))
        for path in (self.stream_path, self.datagram_path):
            os.chmod(path, 0o777)
        for sock in (self.stream, self.datagram):
            sock.settimeout(0.1)
        self.arrived: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                self.stream.accept()[0].close()
                self.arrived.append(f"connection on {self.stream_path}")
            except OSError:
                pass
            try:
                self.arrived.append(f"datagram {self.datagram.recv(100)!r} on {self.datagram_path}")
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for sock in (self.stream, self.datagram):
            sock.close()
        for path in (self.stream_path, self.datagram_path):
            path.unlink(missing_ok=True)


_SOCKET_THIEF = """
import socket, sys
for stream_path, datagram_path in PATHS:
    attempts = {
        "stream": lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect(stream_path),
        "datagram": lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"hi", datagram_path),
        # a datagram pair needs no socket() call, and sendto takes any path
        "pair": lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)[0].sendto(b"hi", datagram_path),
    }
    for how, attempt in attempts.items():
        try:
            attempt()
            print("REACHED", how, stream_path, file=sys.stderr)
        except OSError as exc:
            print("refused", how, stream_path, exc, file=sys.stderr)
"""


@pytest.fixture()
def interpreter_under_tmp():
    """An interpreter path under /tmp (a symlink to this one), whose directory the sandbox must re-bind."""
    root = Path("/tmp") / f"lmaudit-interp-{uuid.uuid4().hex[:8]}"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python3").symlink_to(os.path.realpath(sys.executable))
    yield root / "bin"
    for entry in (root / "bin").iterdir():
        entry.unlink()
    (root / "bin").rmdir()
    root.rmdir()


def test_no_socket_in_the_file_system_is_reachable(interpreter_under_tmp):
    places = [Path("/run"), Path("/var/run"), Path("/var/tmp"), interpreter_under_tmp]
    servers = [_UnixServer(place) for place in places if place.is_dir()]
    try:
        paths = [(str(s.stream_path), str(s.datagram_path)) for s in servers]
        sandbox = Sandbox(FAST, isolation="bwrap", workers=1, interpreter=str(interpreter_under_tmp / "python3"))
        result = sandbox.run(_SOCKET_THIEF.replace("PATHS", repr(paths)))
    finally:
        for server in servers:
            server.close()
    assert result.status == "passed", result.stderr  # the program itself ran to its end
    assert "REACHED" not in result.stderr, result.stderr
    assert [a for server in servers for a in server.arrived] == []
    assert result.stderr.count("refused") == 3 * len(servers) == 12


# -- 3. total memory and file count per sandbox ---------------------------------------------------------

_FOUR_PROCESSES = """
import os
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        block = bytearray(150 << 20)
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just reserved
        import time
        time.sleep(1)
        os._exit(0)
    children.append(pid)
codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
assert codes == [0, 0, 0, 0], codes
"""


def test_total_memory_of_a_sandbox_is_capped():
    # 4 x 150 MiB stays under the per-process limit (512 MiB) but not under the 256 MiB total.
    sandbox = Sandbox(Limits(wall_seconds=20, memory_bytes=512 << 20, total_memory_bytes=256 << 20),
                      isolation="bwrap", workers=1)
    enforced = sandbox.describe()["enforced"]
    if enforced["total_memory"]["mechanism"] == "none":  # reported as such: test_sandbox_cli checks the fallback
        pytest.skip(f"this machine gives no cgroup for a total memory cap: {sandbox.cgroups.reason}")
    result = sandbox.run(_FOUR_PROCESSES)
    assert (result.status, result.error_type) == ("error", "MemoryLimitExceeded"), result


def test_file_count_of_a_sandbox_is_capped():
    program = ("import os\nn = 0\ntry:\n    while True:\n        open(f'f{n}', 'w').close()\n        n += 1\n"
               "except OSError as exc:\n    print('stopped after', n, exc, file=__import__('sys').stderr)\n"
               "    raise\n")
    sandbox = Sandbox(Limits(wall_seconds=20, max_files=2000), isolation="bwrap", workers=1)
    assert sandbox.describe()["enforced"]["files"]["mechanism"] == "tmpfs nr_inodes"
    result = sandbox.run(program)
    assert result.error_type == "OSError" and "No space left on device" in result.stderr, result
    stopped_after = int(result.stderr.split("stopped after")[1].split()[0])
    assert 1900 <= stopped_after <= 2000  # the working directory and program.py take an inode each


# -- 4. forged passes -----------------------------------------------------------------------------------

PROBLEM = {
    "task_id": "Forge/0",
    "prompt": 'def add(a, b):\n    """Return a + b."""\n',
    "canonical_solution": "    return a + b\n",
    "test": ("METADATA = {}\n\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n"
             "    assert candidate(-1, 1) == 0\n    assert candidate(0.5, 0.25) == 0.75\n"
             "    assert abs(candidate(1.5, 1.5) - 3.0) < 1e-9\n"),
    "entry_point": "add",
}

FORGERIES = {
    # A result that equals anything.
    "eq_always_true": ("    class Anything:\n        def __eq__(self, other):\n            return True\n"
                       "        def __sub__(self, other):\n            return 0\n"
                       "    return Anything()\n"),
    # Write a pass on every descriptor it has, and on every one it can reach through /proc, then leave.
    "forged_status": ("    import os, marshal\n    frame = marshal.dumps(('done',))\n"
                      "    for line in (b'passed -', len(frame).to_bytes(4, 'big') + frame):\n"
                      "        for fd in range(3, 256):\n            try:\n                os.write(fd, line)\n"
                      "            except OSError:\n                pass\n"
                      "        for entry in os.listdir('/proc'):\n            if entry.isdigit():\n"
                      "                try:\n                    fds = os.listdir(f'/proc/{entry}/fd')\n"
                      "                except OSError:\n                    continue\n"
                      "                for fd in fds:\n                    try:\n"
                      "                        with open(f'/proc/{entry}/fd/{fd}', 'wb') as out:\n"
                      "                            out.write(line)\n"
                      "                    except OSError:\n                        pass\n"
                      "    os._exit(0)\n"),
    # Read the expected value from the test's own source, found through the caller's frame.
    "caller_frame": ("    import re, sys\n    try:\n        frame = sys._getframe(1)\n"
                     "        source = open(frame.f_code.co_filename).read()\n"
                     "    except (OSError, ValueError):\n        return a - b\n"
                     "    for args, expected in re.findall(r'candidate\\(([^()]*)\\) (?:==|-) ([-0-9.]+)', source):\n"
                     "        if eval('(' + args + ',)') == (a, b):\n            return float(expected)\n"
                     "    return a - b\n"),
    # Top-level code installs a trace hook that swaps the test function for one that checks nothing. (No
    # `def` at column 0: a base model's completion is cut there.)
    "trace_hook": ("    return a - b\n\n\nimport sys\n_swap = lambda frame, event, arg: ("
                   "frame.f_globals.update(check=lambda candidate: None) if 'check' in frame.f_globals else None)"
                   " or _swap\nsys._getframe().f_trace = _swap\nsys.settrace(lambda *args: None)\n"),
}


@pytest.fixture(scope="module")
def forge_task(tmp_path_factory):
    path = tmp_path_factory.mktemp("forge") / "problems.jsonl"
    path.write_text(json.dumps(PROBLEM) + "\n")
    return humaneval(data_path=str(path), timeout=10, workers=2, n=len(FORGERIES) + 1, temperature=0.8)


def test_forged_passes_are_scored_as_failures(forge_task):
    sample = forge_task.samples()[0]
    answers = [Generation(text=text, finish_reason="stop") for text in
               [PROBLEM["canonical_solution"], *FORGERIES.values()]]
    scored = forge_task.score_batch([(sample, answers)])[0]
    outcomes = dict(zip(["canonical", *FORGERIES], scored.execution))
    assert outcomes["canonical"]["status"] == "passed", outcomes["canonical"]
    forged = {name: (o["status"], o["error_type"]) for name, o in outcomes.items()
              if name != "canonical" and o["status"] == "passed"}
    assert forged == {}, forged
    assert scored.scores["pass_rate"] == pytest.approx(1 / (len(FORGERIES) + 1))
    # Each failed for the reason it should: a wrong value, not a crash of the harness.
    for name in ("eq_always_true", "caller_frame", "trace_hook"):
        assert outcomes[name]["status"] == "failed" and outcomes[name]["error_type"] == "AssertionError", \
            (name, outcomes[name])
    # Its bytes reach only the pipe to the monitor, which reads them as a broken reply.
    assert outcomes["forged_status"]["status"] == "error", outcomes["forged_status"]


def test_builtins_patched_by_the_program_do_not_reach_the_tests(tmp_path):
    problem = {**PROBLEM, "task_id": "Forge/1", "test": ("def check(candidate):\n"
                                                          "    assert abs(candidate(1.5, 1.5) - 3.0) < 1e-9\n")}
    path = tmp_path / "abs.jsonl"
    path.write_text(json.dumps(problem) + "\n")
    task = humaneval(data_path=str(path), timeout=10, workers=1)
    patched = "    return a - b\n\n\nimport builtins\nbuiltins.abs = lambda x: 0\n"
    scored = task.score_batch([(task.samples()[0], [Generation(text=patched, finish_reason="stop")])])[0]
    assert (scored.execution[0]["status"], scored.execution[0]["error_type"]) == ("failed", "AssertionError")


# -- the system-call filter, call by call ---------------------------------------------------------------

_FILTER_PROBE = """
import ctypes, os, platform, socket, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
numbers = {"x86_64": {"keyctl": 250, "unshare": 272, "io_uring_setup": 425},
           "aarch64": {"keyctl": 219, "unshare": 97, "io_uring_setup": 425}}[platform.machine()]

def call(name, *args):
    result = libc.syscall(numbers[name], *args)
    return result if result >= 0 else -ctypes.get_errno()

outcome = {
    "keyctl": call("keyctl", 0, -3, 0),                      # KEYCTL_GET_KEYRING_ID of @s
    "new_user_namespace": call("unshare", 0x10000000),       # CLONE_NEWUSER
    "io_uring": call("io_uring_setup", 4, ctypes.create_string_buffer(120)),
}
for name, make in {"unix_socket": lambda: socket.socket(socket.AF_UNIX),
                   "datagram_pair": lambda: socket.socketpair(type=socket.SOCK_DGRAM)}.items():
    try:
        make()
        outcome[name] = "allowed"
    except OSError as exc:
        outcome[name] = -exc.errno
# What ordinary programs need still works.
left, right = socket.socketpair()
left.sendall(b"x")
assert right.recv(1) == b"x"
thread = threading.Thread(target=lambda: None)
thread.start()
thread.join()
assert subprocess.run(["true"]).returncode == 0
socket.socket(socket.AF_INET).close()
print(outcome, file=__import__("sys").stderr)
assert outcome == {"keyctl": -1, "new_user_namespace": -1, "io_uring": -38, "unix_socket": -13,
                   "datagram_pair": -13}, outcome
"""


def test_the_system_call_filter_refuses_exactly_what_it_should():
    result = Sandbox(FAST, isolation="bwrap", workers=1).run(_FILTER_PROBE)
    assert result.passed, result.stderr


def test_a_worker_speaking_the_protocol_itself_gains_nothing():
    """The program may write replies on its end of the pipe itself: name an object of the monitor's own
    standard library that equals everything (unittest.mock.ANY), or end an iteration from a call. Neither
    passes: references to the standard library must be classes or functions, and StopIteration from a call
    is an error (as PEP 479 makes it in generators)."""
    tests = {"mock_any": "assert f(1) == 2\n", "stop_iteration_from_a_call": "assert all(map(f, [0, 1]))\n"}
    forged = {
        "mock_any": ("import marshal, os, stat, time\n"
                     "def f(x):\n    data = marshal.dumps(('ok', ('g', 'unittest.mock', 'ANY')))\n"
                     "    for fd in range(3, 64):\n        try:\n"
                     "            if stat.S_ISFIFO(os.fstat(fd).st_mode):\n"
                     "                os.write(fd, len(data).to_bytes(4, 'big') + data)\n"
                     "        except OSError:\n            pass\n    time.sleep(30)\n"),
        "stop_iteration_from_a_call": "def f(x):\n    raise StopIteration\n",
    }
    sandbox = Sandbox(FAST, isolation="bwrap", workers=2)
    results = dict(zip(tests, sandbox.run_many([Program(forged[name], tests[name]) for name in tests])))
    assert (results["mock_any"].status, results["mock_any"].error_type) == ("error", "WorkerProtocolError")
    stopped = results["stop_iteration_from_a_call"]
    assert (stopped.status, stopped.error_type) == ("error", "RuntimeError"), stopped.stderr


# The program serves its end of the pipe itself: it announces more names than the tests asked for (a
# built-in's among them), then answers every request with 0.
_OWN_SERVER = """
import marshal, os, stat, time
def frame(message):
    data = marshal.dumps(message)
    return len(data).to_bytes(4, "big") + data
pipes = []
for fd in range(3, 64):
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.set_blocking(fd, False)
            pipes.append(fd)
    except OSError:
        pass
def broadcast(message):
    for fd in pipes:
        try:
            os.write(fd, frame(message))
        except OSError:  # the read ends
            pass
broadcast(("ready", {"add": ("r", 0, "function", True), "abs": ("r", 1, "function", True)}))
deadline = time.monotonic() + 4
while time.monotonic() < deadline:
    for fd in pipes:
        try:
            if os.read(fd, 65536):
                broadcast(("ok", ("v", 0)))
        except OSError:  # nothing yet, or a write end
            pass
    time.sleep(0.01)
"""


def test_names_the_tests_did_not_ask_for_are_not_bound():
    program = Program(_OWN_SERVER, "assert abs(add(1.5, 1.5) - 3.0) < 1e-9\n", uses=("add",))
    result = Sandbox(FAST, isolation="bwrap", workers=1).run(program)
    assert (result.status, result.error_type) == ("failed", "AssertionError"), result
