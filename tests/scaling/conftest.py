"""One tiny ladder, trained once per session on a real corpus (the stdlib's email package), for several tests."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
from typer.testing import CliRunner


@pytest.fixture(scope="session")
def small_corpus() -> Path:
    return Path(sysconfig.get_paths()["stdlib"]) / "email"


@pytest.fixture(scope="session")
def tiny_ladder(tmp_path_factory, small_corpus):
    """The `lmaudit scaling ladder --preset tiny` command, run for real; returns (out folder, CLI result)."""
    from lmaudit.cli.scaling import app

    out = tmp_path_factory.mktemp("ladder")
    result = CliRunner().invoke(app, ["ladder", "--preset", "tiny", "--corpus", str(small_corpus), "--output-dir", str(out),
                                      "--resamples", "100", "--quiet"])
    if result.exception is not None:
        raise result.exception
    assert result.exit_code == 0, result.output
    return out, result
