"""Hostile programs against the real sandbox: each must end as not passed, for the right reason, and leave
the host's files, processes and network exactly as they were.

Canaries live outside /tmp (the sandbox replaces /tmp with its own tmpfs, so a canary there would prove
nothing): a fake home and a fake project checkout under /var/tmp, with HOME pointing at the fake home.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from lmaudit.sandbox import Limits, Sandbox, SandboxError

REPO = Path(__file__).resolve().parents[2]
SECRET = "sk-canary-" + uuid.uuid4().hex
SANDBOX_UID_MIN = 1_000_000  # root-run sandboxes use random uids from here up (isolation._UID_RANGE)
LIMITS = Limits(wall_seconds=3, cpu_seconds=1, memory_bytes=256 << 20, max_output_bytes=256 << 10,
                max_file_bytes=4 << 20, tmp_bytes=8 << 20)


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _sandbox_uid_processes() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            uid = int(status.split("\nUid:")[1].split()[0])
            if uid >= SANDBOX_UID_MIN:
                pids.append(int(entry))
    return pids


def _listening_ports() -> set[tuple[str, int]]:
    ports = set()
    for name in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                ports.add((name, int(fields[1].rsplit(":", 1)[1], 16)))
    return ports


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """Canary home and project, a host TCP server on 127.0.0.1, a canary process, a secret in the env."""
    root = Path("/var/tmp") / f"lmaudit-canary-{uuid.uuid4().hex[:12]}"
    home, project = root / "home", root / "project"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text(f"PRIVATE KEY {SECRET}\n")
    (home / "canary.txt").write_text("home canary\n")
    (project / "src").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'canary'\n")
    (project / "src" / "app.py").write_text("print('canary')\n")
    (project / "runs").mkdir()
    (project / "runs" / "samples.jsonl").write_text('{"sample_id": "x"}\n')

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except OSError:
                pass

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    canary_process = subprocess.Popen(["sleep", "600"])
    saved = {k: os.environ.get(k) for k in ("HOME", "LMAUDIT_CANARY_API_KEY")}
    os.environ["HOME"] = str(home)
    os.environ["LMAUDIT_CANARY_API_KEY"] = SECRET
    try:
        # isolation="bwrap": never fall back to a weaker level here, where these programs would do real damage.
        try:
            sandbox = Sandbox(LIMITS, isolation="bwrap", workers=2)
        except SandboxError as exc:
            pytest.fail(f"the adversarial suite needs bubblewrap (apt-get install bubblewrap): {exc}")
        yield {"root": root, "home": home, "project": project, "port": server.getsockname()[1],
               "accepted": accepted, "canary_process": canary_process, "sandbox": sandbox}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stop.set()
        thread.join()
        server.close()
        canary_process.kill()
        canary_process.wait()
        shutil.rmtree(root)


def hostile_programs(host: dict) -> dict[str, tuple[str, str, set[str]]]:
    """name -> (program, expected status, acceptable error types)."""
    home, project, port = host["home"], host["project"], host["port"]
    driver = REPO / "src" / "lmaudit" / "sandbox" / "_driver.py"
    return {
        "fork_bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
                      "timeout", {"WallTimeLimit"}),
        # The sandbox's root holds only what the interpreter needs: /var/tmp and the homes are not there.
        "rm_rf_home": (f"import os, subprocess\nsubprocess.run(['rm', '-rf', {str(home)!r}], check=True)\n"
                       f"assert os.path.exists({str(home)!r}), 'nothing there to delete'\n",
                       "failed", {"AssertionError"}),
        "rm_rf_project": (f"import shutil\nshutil.rmtree({str(project)!r})\n", "error", {"FileNotFoundError"}),
        "write_outside_tmp": (f"open({str(project / 'src' / 'app.py')!r}, 'w').write('pwned')\n",
                              "error", {"FileNotFoundError"}),
        "write_var_tmp": ("open('/var/tmp/pwned', 'w').write('x')\n", "error", {"FileNotFoundError"}),
        "write_usr": ("open('/usr/lib/pwned', 'w').write('x')\n", "error", {"OSError", "PermissionError"}),
        "read_ssh_key": (f"print(open({str(home / '.ssh' / 'id_ed25519')!r}).read())\n",
                         "error", {"FileNotFoundError", "PermissionError"}),
        "read_env_key": ("import os, sys\nsys.stderr.write(repr(dict(os.environ)))\n"
                         "sys.stderr.write(open('/proc/1/environ').read())\n"
                         "print(os.environ['LMAUDIT_CANARY_API_KEY'])\n", "error", {"KeyError", "PermissionError"}),
        "connect_localhost": (f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)\n",
                              "error", {"ConnectionRefusedError"}),
        "connect_outside": ("import socket\nsocket.create_connection(('203.0.113.1', 80), timeout=30)\n",
                            "error", {"OSError"}),
        # CPU limit 1 s, wall limit 3 s: on a loaded machine the wall clock may run out first.
        "infinite_loop": ("while True:\n    pass\n", "timeout", {"CPUTimeLimit", "WallTimeLimit"}),
        "memory_bomb": ("blocks = []\nwhile True:\n    blocks.append(bytearray(1 << 24))\n", "error", {"MemoryError"}),
        "stdout_flood": ("while True:\n    print('x' * 4096)\n", "error", {"OutputLimitExceeded"}),
        "kill_parent": (f"import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill({os.getpid()}, "
                        "signal.SIGKILL)\n", "error", {"PermissionError", "ProcessLookupError"}),
        # Signals every process it may: only its own child is in reach (asserted), the host is not.
        "kill_everything": ("import os, signal, subprocess\nchild = subprocess.Popen(['sleep', '60'])\n"
                            "os.kill(-1, signal.SIGKILL)\nassert child.wait() == -signal.SIGKILL\n"
                            "assert False, 'still here'\n", "failed", {"AssertionError"}),
        "ignore_sigterm": ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                           "while True:\n    time.sleep(1)\n", "timeout", {"WallTimeLimit"}),
        "outliving_children": ("import os, subprocess, threading, time\n"
                               "threading.Thread(target=time.sleep, args=(600,)).start()\n"
                               "subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
                               "if os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\n    os._exit(0)\n"
                               "os._exit(0)  # skip the tests, leave everything running\n",
                               "error", {"ExitedBeforeTestsFinished(exit code 0)"}),
        "chdir_root_and_write": ("import os\nos.chdir('/')\nopen('pwned.txt', 'w').write('x')\n",
                                 "error", {"OSError", "PermissionError"}),
        "tamper_harness": ("import os\nopen(os.path.abspath(__file__), 'w').write('pass')\n",
                           "error", {"PermissionError"}),
        "tamper_lmaudit": (f"open({str(driver)!r}, 'a').write('# pwned')\n", "error", {"OSError", "PermissionError"}),
        "tamper_run_records": (f"open({str(project / 'runs' / 'samples.jsonl')!r}, 'a').write('forged')\n",
                               "error", {"FileNotFoundError"}),
        # No capability survives into the program (bwrap granted the driver some to set the sandbox up).
        "capabilities": ("caps = dict(line.split(':\\t') for line in open('/proc/self/status').read().splitlines()"
                         " if line.startswith('Cap'))\nassert all(int(caps[k], 16) == 0 for k in "
                         "('CapInh', 'CapPrm', 'CapEff', 'CapAmb')), caps\n", "passed", {None}),
        # The working directory is the only writable place, and it is capped (tmp_bytes = 8 MiB here).
        "fill_disk": ("data = b'x' * (1 << 20)\nfor i in range(10000):\n    open(f'fill{i}', 'wb').write(data)\n",
                      "error", {"OSError"}),
        "write_tmp": ("open('/tmp/pwned', 'w').write('x')\n", "error", {"OSError"}),
    }


def test_hostile_programs_are_contained(host):
    sandbox: Sandbox = host["sandbox"]
    programs = hostile_programs(host)
    assert len(programs) >= 15
    files_before = _snapshot(host["root"])
    repo_before = _snapshot(REPO / "src" / "lmaudit" / "sandbox")
    children_before = _descendants(os.getpid())
    listening_before = _listening_ports()

    results = dict(zip(programs, sandbox.run_many([p for p, _, _ in programs.values()])))

    problems = []
    for name, (_, status, error_types) in programs.items():
        result = results[name]
        if result.status != status or result.error_type not in error_types:
            problems.append(f"{name}: {result.status}/{result.error_type} (want {status}/{error_types}); "
                            f"stderr: {result.stderr[-300:]}")
    assert not problems, "\n".join(problems)
    # No network at all: the outside address fails at once instead of waiting for the 30 s timeout.
    assert results["connect_outside"].seconds < 5 and "unreachable" in results["connect_outside"].stderr
    assert "nothing there to delete" in results["rm_rf_home"].stderr
    assert "No space left on device" in results["fill_disk"].stderr
    assert "Read-only file system" in results["write_tmp"].stderr
    assert "Read-only file system" in results["write_usr"].stderr
    assert "still here" in results["kill_everything"].stderr
    for result in results.values():
        assert SECRET not in result.stderr

    # Host state: files, processes, network.
    assert _snapshot(host["root"]) == files_before
    assert _snapshot(REPO / "src" / "lmaudit" / "sandbox") == repo_before
    assert host["accepted"] == [], "a sandboxed program reached the host's 127.0.0.1 server"
    # Killed namespaces are reaped asynchronously: allow a few seconds (the leftovers would sleep 600 s).
    deadline = time.monotonic() + 10
    while (_descendants(os.getpid()) != children_before or _sandbox_uid_processes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _descendants(os.getpid()) == children_before, "sandboxed processes outlived their run"
    assert _sandbox_uid_processes() == []
    assert host["canary_process"].poll() is None, "a host process was killed"
    assert _listening_ports() >= listening_before - {p for p in listening_before if p[1] != host["port"]}


def test_a_listening_socket_inside_is_invisible_to_the_host(host):
    port = _free_port()
    program = (f"import socket, time\nserver = socket.socket()\n"
               f"server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
               f"server.bind(('0.0.0.0', {port}))\nserver.listen()\nprint('listening', flush=True)\n"
               "time.sleep(600)\n")
    sandbox = Sandbox(Limits(wall_seconds=2), isolation="bwrap", workers=1)
    outcome: list[object] = []
    runner = threading.Thread(target=lambda: outcome.append(sandbox.run(program)))
    runner.start()
    seen, reached = False, False
    while runner.is_alive():
        seen |= any(p == port for _, p in _listening_ports())
        with socket.socket() as client:
            client.settimeout(0.2)
            reached |= client.connect_ex(("127.0.0.1", port)) == 0
        time.sleep(0.1)
    runner.join()
    assert not seen and not reached
    assert outcome[0].status == "timeout"


def test_the_harness_survives_and_keeps_working_after_the_suite(host):
    # A sandbox built after the hostile runs still runs normal programs correctly.
    result = Sandbox(LIMITS, isolation="bwrap", workers=1).run("assert sum(range(5)) == 10\n")
    assert result.status == "passed", result
    assert (host["home"] / "canary.txt").read_text() == "home canary\n"


def test_run_records_carry_the_reason(host):
    result = host["sandbox"].run("def f(x):\n    return x\nassert f(1) == 2, 'wrong answer'\n")
    record = result.to_dict()
    assert record["status"] == "failed" and record["error_type"] == "AssertionError"
    assert "wrong answer" in record["stderr"] and record["seconds"] > 0
    assert set(record) == {"status", "error_type", "stderr", "seconds", "exit_code"}


_AS_NOBODY = """
import json, sys
sys.path[:0] = [SRC, SITE]
from lmaudit.sandbox import Limits, Program, Sandbox, SandboxError
sandbox = Sandbox(Limits(wall_seconds=5, max_processes=16, max_files=300), isolation="bwrap", workers=1)
# Same uid as the monitor here: the program writes a pass everywhere it can reach, then leaves.
forge = ("import os\\ndef f(x):\\n    for fd in range(3, 64):\\n        try:\\n"
         "            os.write(fd, b'passed -')\\n        except OSError:\\n            pass\\n"
         "    for pid in os.listdir('/proc'):\\n        try:\\n            for fd in os.listdir(f'/proc/{pid}/fd'):\\n"
         "                open(f'/proc/{pid}/fd/{fd}', 'wb').write(b'passed -')\\n        except OSError:\\n"
         "            pass\\n    os._exit(0)\\n")
programs = {
    "forge": Program(forge, "assert f(1) == 2\\n"),
    "files": "n = 0\\nwhile True:\\n    open(f'f{n}', 'w').close()\\n    n += 1\\n",
    "forks": "import os, time\\nn = 0\\ntry:\\n    while True:\\n        if os.fork() == 0:\\n"
             "            time.sleep(30)\\n            os._exit(0)\\n        n += 1\\nexcept OSError:\\n"
             "    raise SystemExit(n)\\n",
    "net": "import socket\\nsocket.create_connection(('203.0.113.1', 80), timeout=30)\\n",
    "write": "open('/usr/lmaudit-pwned', 'w')\\n",
    "tmp": "open('/tmp/lmaudit-pwned', 'w')\\n",
    "ok": "import os\\nassert os.getcwd() == '/tmp/work'\\nopen('f', 'w').write('x')\\n",
    "caps": "caps = dict(l.split(':\\\\t') for l in open('/proc/self/status').read().splitlines() if l.startswith('Cap'))\\n"
            "assert all(int(caps[k], 16) == 0 for k in ('CapInh', 'CapPrm', 'CapEff', 'CapAmb')), caps\\n",
}
report = {name: sandbox.run(program).to_dict() for name, program in programs.items()}
report["level"] = sandbox.isolation.level
report["enforced"] = sandbox.enforced()
print(json.dumps(report))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not os.access("/usr/bin/python3", os.X_OK),
                    reason="needs root (to become another user) and a system /usr/bin/python3")
def test_unprivileged_user_gets_the_same_isolation():
    """Without root, bwrap runs in a user namespace: check that path for real, as the `nobody` user."""
    import json

    import numpy

    site = str(Path(numpy.__file__).parents[1])
    code = _AS_NOBODY.replace("SRC", repr(str(REPO / "src"))).replace("SITE", repr(site))
    done = subprocess.run(["/usr/bin/python3", "-I", "-c", code], capture_output=True, text=True, timeout=60,
                          user=65534, group=65534, extra_groups=[], cwd="/", env={"PATH": os.environ["PATH"]})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["level"] == "bwrap"
    forks = report["forks"]
    assert forks["error_type"] == "SystemExit", forks  # the process limit stopped the fork loop
    assert int(forks["stderr"].strip().splitlines()[-1].split()[-1]) < 16
    assert report["net"]["error_type"] == "OSError" and "unreachable" in report["net"]["stderr"]
    assert report["write"]["error_type"] == "OSError" and "Read-only" in report["write"]["stderr"]
    assert report["tmp"]["error_type"] == "OSError" and "Read-only" in report["tmp"]["stderr"]
    assert report["ok"]["status"] == "passed", report["ok"]
    assert report["caps"]["status"] == "passed", report["caps"]  # CAP_SYS_ADMIN, granted for the mount, is gone
    assert report["forge"]["status"] == "error", report["forge"]  # the monitor is non-dumpable: out of reach
    assert report["files"]["error_type"] == "OSError" and "No space left" in report["files"]["stderr"]
    enforced = report["enforced"]
    assert enforced["files"]["mechanism"] == "tmpfs nr_inodes" and enforced["syscall_filter"]["denied"]
    assert "non-dumpable" in enforced["status_channel"]["mechanism"]
    assert enforced["total_memory"]["mechanism"] == "none" and enforced["total_memory"]["worst_case_bytes"]
