import json

from typer.testing import CliRunner

from lmaudit.cli.sandbox import app


def test_info_reports_the_isolation_in_force():
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["isolation"]["level"] == "bwrap"


def test_run_a_file(tmp_path):
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text("assert sorted([3, 1, 2]) == [1, 2, 3]\n")
    bad.write_text("import socket\nsocket.create_connection(('203.0.113.1', 80), timeout=30)\n")
    runner = CliRunner()
    ok = runner.invoke(app, ["run", str(good)])
    assert ok.exit_code == 0 and json.loads(ok.output)["status"] == "passed"
    blocked = runner.invoke(app, ["run", str(bad), "--timeout", "5"])
    assert blocked.exit_code == 1 and json.loads(blocked.output)["error_type"] == "OSError"


def test_no_isolation_needs_the_flag(tmp_path):
    result = CliRunner().invoke(app, ["info", "--isolation", "none"])
    assert result.exit_code == 2 and "allow_unsandboxed" in result.output
    allowed = CliRunner().invoke(app, ["info", "--isolation", "none", "--allow-unsandboxed"])
    assert allowed.exit_code == 0 and json.loads(allowed.output)["isolation"]["level"] == "none"
