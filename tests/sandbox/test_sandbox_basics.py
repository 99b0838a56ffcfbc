"""Outcome classification, limits, levels and refusal: real programs in real sandboxes."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from lmaudit.core.errors import ConfigError, LmauditError
from lmaudit.sandbox import Limits, Sandbox, SandboxError

FAST = Limits(wall_seconds=3, cpu_seconds=1, memory_bytes=512 << 20, max_output_bytes=64 << 10)

CASES = {
    # name: (program, status, error type)
    "passes": ("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\n", "passed", None),
    "wrong_answer": ("def add(a, b):\n    return a - b\nassert add(2, 3) == 5\n", "failed", "AssertionError"),
    "exception": ("[][1]\n", "error", "IndexError"),
    "syntax": ("def f(:\n", "error", "SyntaxError"),
    "exit_zero_skips_tests": ("import os\nos._exit(0)\nassert False\n", "error",
                              "ExitedBeforeTestsFinished(exit code 0)"),
    "sys_exit": ("import sys\nsys.exit(0)\n", "error", "SystemExit"),
    "segfault": ("import ctypes\nctypes.string_at(0)\n", "error", "Killed(SIGSEGV)"),
    "wall_limit": ("import time\ntime.sleep(60)\n", "timeout", "WallTimeLimit"),
    "memory": ("x = bytearray(1 << 30)\n", "error", "MemoryError"),
    "output_cap": ("import sys\nsys.stdout.write('y' * (1 << 20))\n", "error", "OutputLimitExceeded"),
    "stdin_is_empty": ("import sys\nassert sys.stdin.read() == ''\n", "passed", None),
    "reads_input": ("input()\n", "error", "EOFError"),
    "site_packages_importable": ("import numpy\nassert int(numpy.arange(4).sum()) == 6\n", "passed", None),
    "unicode_output": ("print('héllo ✓')\nassert 'é'.upper() == 'É'\n", "passed", None),
}


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(FAST, workers=2)


def test_outcomes_are_classified(sandbox):
    results = dict(zip(CASES, sandbox.run_many([c[0] for c in CASES.values()])))
    wrong = {name: (r.status, r.error_type, r.stderr[-200:]) for name, r in results.items()
             if (r.status, r.error_type) != CASES[name][1:]}
    assert not wrong
    assert results["passes"].passed and not results["wrong_answer"].passed
    assert "return a - b" not in results["wrong_answer"].stderr  # the trace points at the failing assert
    assert 'program.py", line 3' in results["wrong_answer"].stderr
    assert results["wall_limit"].seconds == pytest.approx(3, abs=1)


def test_cpu_time_limit():
    # A generous wall-clock limit, so the CPU limit is what stops it even on a busy machine.
    result = Sandbox(Limits(wall_seconds=30, cpu_seconds=1), workers=1).run("while True:\n    pass\n")
    assert (result.status, result.error_type) == ("timeout", "CPUTimeLimit")
    assert result.seconds < 30


def test_stderr_keeps_the_tail(sandbox):
    result = sandbox.run("import sys\nsys.stderr.write('a' * 5000 + 'THE END')\nraise ValueError('boom')\n")
    assert result.error_type == "ValueError"
    assert result.stderr.startswith("...") and len(result.stderr) == FAST.stderr_chars + 3
    assert result.stderr.rstrip().endswith("ValueError: boom")


def test_results_keep_input_order_and_run_in_parallel():
    sleepy = Sandbox(Limits(wall_seconds=20), workers=2)
    programs = [f"import time\ntime.sleep(1.5)\nassert {i} == {i}\n" for i in range(4)] + ["assert 1 == 2\n"]
    began = time.monotonic()
    results = sleepy.run_many(programs)
    elapsed = time.monotonic() - began
    assert [r.status for r in results] == ["passed"] * 4 + ["failed"]
    assert elapsed < 5.0  # two at a time (about 3 s), not one after the other (over 6 s)


def test_sandboxes_started_ahead_all_survive_to_run_their_program():
    # Sandboxes started ahead are handed to whichever worker is free; none may be lost on the way
    # (bwrap's --die-with-parent follows the thread that started a sandbox, not the process).
    sandbox = Sandbox(Limits(wall_seconds=10), workers=2, prestart=3)
    results = sandbox.run_many([f"assert {i} + 1 == {i + 1}\n" for i in range(60)])
    assert [r.status for r in results] == ["passed"] * 60, [r for r in results if not r.passed][:3]


def test_the_environment_is_clean_and_the_workdir_private(sandbox, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-inherited")
    program = ("import os\nassert 'OPENAI_API_KEY' not in os.environ, os.environ\n"
               "assert sorted(os.environ) == ['HOME', 'LANG', 'MKL_NUM_THREADS', 'OMP_NUM_THREADS', "
               "'OPENBLAS_NUM_THREADS', 'PATH', 'PWD', 'TMPDIR'], sorted(os.environ)\n"
               "assert os.listdir('.') == ['program.py'], os.listdir('.')\n"
               "open('scratch.txt', 'w').write('ok')\n")
    result = Sandbox(FAST, workers=1).run(program)
    assert result.passed, result.stderr


def test_describe_says_what_is_in_force(sandbox):
    info = sandbox.describe()
    assert info["isolation"]["level"] == "bwrap"
    assert info["isolation"]["network_namespace"] and info["isolation"]["read_only_root"]
    assert info["isolation"]["process_limit"] and info["isolation"]["pid_namespace"]
    assert info["limits"]["wall_seconds"] == 3 and info["workers"] == 2


def test_no_isolation_is_refused_without_the_flag():
    with pytest.raises(SandboxError, match="allow_unsandboxed"):
        Sandbox(FAST, isolation="none")
    assert issubclass(SandboxError, LmauditError)


def test_no_isolation_with_the_flag_still_applies_limits():
    sandbox = Sandbox(FAST, isolation="none", allow_unsandboxed=True, workers=1)
    assert sandbox.describe()["isolation"]["level"] == "none"
    results = sandbox.run_many(["assert 2 + 2 == 4\n", "while True:\n    pass\n"])
    assert [r.status for r in results] == ["passed", "timeout"]


@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare not installed")
def test_unshare_level_has_no_network():
    sandbox = Sandbox(FAST, isolation="unshare", workers=1)
    info = sandbox.describe()["isolation"]
    assert info["level"] == "unshare" and info["network_namespace"] and not info["read_only_root"]
    assert info["process_limit"] == (os.geteuid() != 0)
    result = sandbox.run("import socket\nsocket.create_connection(('203.0.113.1', 80), timeout=30)\n")
    assert result.error_type == "OSError" and result.seconds < 5  # refused at once, not after 30 s
    assert sandbox.run("import os\nassert os.getpid() != 1\n").passed  # the driver is not the namespace's init


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="wall_seconds"):
        Limits(wall_seconds=0)
    with pytest.raises(ConfigError, match="workers"):
        Sandbox(FAST, workers=0)
    with pytest.raises(ConfigError, match="prestart"):
        Sandbox(FAST, prestart=0)
    with pytest.raises(ConfigError, match="unknown isolation"):
        Sandbox(FAST, isolation="docker")


def test_a_missing_interpreter_is_a_clear_error():
    with pytest.raises(ConfigError, match="interpreter not found"):
        Sandbox(FAST, interpreter="/nonexistent/python3")


def test_only_the_interpreters_folders_are_bound_never_a_home(monkeypatch, tmp_path):
    from lmaudit.sandbox.isolation import Interpreter, _bwrap_prefix, isolation_for

    home = tmp_path / "home" / "user"
    (home / "venv" / "lib").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    interpreter = Interpreter("/usr/bin/python3", ("/", str(home), str(home.parent), str(home / "venv" / "lib"),
                                                   "/usr/lib/python3"), ())
    args = _bwrap_prefix("bwrap", interpreter, isolation_for("bwrap"), 1 << 20)
    binds = [args[i + 1] for i, a in enumerate(args) if a == "--ro-bind"]
    # The system folders, /dev/null over /proc/keys, and the venv; not "/", the home or anything above it.
    assert str(home / "venv" / "lib") in binds and "/usr" in binds
    assert not {"/", str(home), str(home.parent), "/var", "/run", "/tmp", "/home", "/root"} & set(binds)
    assert binds.count("/usr/lib/python3") == 0  # inside /usr, bound already
    pairs = list(zip(args, args[1:]))
    assert ("--dir", str(home)) in pairs and ("--remount-ro", "/") in pairs and ("--remount-ro", "/tmp") in pairs
    where = args.index(str(home))
    assert args[where - 3:where] == ["--perms", "0755", "--dir"]  # made here, empty and traversable
