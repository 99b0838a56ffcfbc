import json

from typer.testing import CliRunner

from lmaudit.cli.sandbox import app
from lmaudit.sandbox import cgroups


def test_info_reports_the_isolation_and_what_enforces_each_limit():
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["isolation"]["level"] == "bwrap"
    enforced = info["enforced"]
    assert set(enforced) == {"total_memory", "processes", "files", "syscall_filter", "status_channel"}
    support = cgroups.detect()
    if support.version is None:  # the fallback, and why, are reported
        assert enforced["total_memory"]["mechanism"] == "none" and enforced["total_memory"]["why"]
        assert enforced["total_memory"]["worst_case_bytes"] > info["limits"]["total_memory_bytes"]
    else:  # this project's machines (root, cgroup v1 memory and pids hierarchies)
        assert enforced["total_memory"]["mechanism"].startswith(f"cgroup v{support.version}")
        assert enforced["total_memory"]["bytes"] == info["limits"]["total_memory_bytes"]
        assert info["cgroups"]["memory_parent"] == str(support.memory_parent)
    assert enforced["files"] == {"mechanism": "tmpfs nr_inodes", "count": info["limits"]["max_files"]}
    assert "RLIMIT_NPROC" in enforced["processes"]["mechanism"]
    assert enforced["syscall_filter"]["mechanism"].startswith("seccomp")
    assert "uid of its own" in enforced["status_channel"]["mechanism"]


def test_run_a_file(tmp_path):
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text("assert sorted([3, 1, 2]) == [1, 2, 3]\n")
    bad.write_text("import socket\nsocket.create_connection(('203.0.113.1', 80), timeout=30)\n")
    runner = CliRunner()
    ok = runner.invoke(app, ["run", str(good)])
    assert ok.exit_code == 0 and json.loads(ok.output)["status"] == "passed"
    blocked = runner.invoke(app, ["run", str(bad), "--timeout", "5"])
    assert blocked.exit_code == 1 and json.loads(blocked.output)["error_type"] == "OSError"


def test_run_a_file_against_separate_tests(tmp_path):
    code, tests = tmp_path / "solution.py", tmp_path / "tests.py"
    code.write_text("def double(x):\n    return 2 * x\n")
    tests.write_text("assert double(21) == 42\nassert double('ab') == 'abab'\n")
    passed = CliRunner().invoke(app, ["run", str(code), "--tests", str(tests)])
    assert passed.exit_code == 0, passed.output
    tests.write_text("assert double(2) == 5\n")
    failed = CliRunner().invoke(app, ["run", str(code), "--tests", str(tests)])
    outcome = json.loads(failed.output)
    assert failed.exit_code == 1 and outcome["error_type"] == "AssertionError" and 'tests.py", line 1' in outcome["stderr"]


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(app, ["info", "--isolation", "none"])
    assert result.exit_code == 2 and "allow_unsandboxed" in result.output and "Traceback" not in result.output
    allowed = CliRunner().invoke(app, ["info", "--isolation", "none", "--allow-unsandboxed"])
    assert allowed.exit_code == 0 and json.loads(allowed.output)["isolation"]["level"] == "none"
    binary = tmp_path / "binary.py"
    binary.write_bytes(b"\xff\xfe not utf-8")
    unreadable = CliRunner().invoke(app, ["run", str(binary)])
    assert unreadable.exit_code == 2 and "cannot read the program" in unreadable.output
    assert CliRunner().invoke(app, ["run", str(tmp_path / "missing.py")]).exit_code == 2
    assert CliRunner().invoke(app, ["info", "--isolation", "docker"]).exit_code == 2
