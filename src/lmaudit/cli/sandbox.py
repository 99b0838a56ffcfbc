"""`lmaudit sandbox`: see which isolation and limits this machine gives untrusted code, and run a file in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from lmaudit.cli.options import cli_command, new_app

app = new_app("The sandbox that code evals (humaneval, mbpp) run model-written programs in.")

IsolationOpt = Annotated[str, typer.Option("--isolation", help="auto (strongest available), bwrap, unshare or none")]
AllowUnsandboxedOpt = Annotated[bool, typer.Option("--allow-unsandboxed", help="permit running with no isolation")]


def _sandbox(isolation: str, allow_unsandboxed: bool, timeout: float = 10.0):
    from lmaudit.sandbox import Limits, Sandbox

    return Sandbox(Limits(wall_seconds=timeout), isolation=isolation, workers=1, allow_unsandboxed=allow_unsandboxed)


def _read(path: Path, what: str) -> str:
    from lmaudit.core.errors import ConfigError

    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc}") from None


@app.command("info")
@cli_command
def info(isolation: IsolationOpt = "auto", allow_unsandboxed: AllowUnsandboxedOpt = False) -> None:
    """Print, as JSON, the isolation in force, each limit with the mechanism that enforces it here (or "none"
    and the fallback), the configured limits (what a run manifest records) and where the cgroups go."""
    sandbox = _sandbox(isolation, allow_unsandboxed)
    typer.echo(json.dumps({**sandbox.describe(), "cgroups": sandbox.cgroups.describe()}, indent=2))


@app.command("run")
@cli_command
def run(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Python file to run")],
        tests: Annotated[Optional[Path], typer.Option("--tests", exists=True, dir_okay=False,
                                                      help="trusted test file, run apart from FILE (in the "
                                                           "sandbox's monitor process), using FILE's names")] = None,
        timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="wall-clock seconds")] = 10.0,
        isolation: IsolationOpt = "auto", allow_unsandboxed: AllowUnsandboxedOpt = False) -> None:
    """Run a Python file in the sandbox and print its outcome as JSON; exit code 0 only if it passed."""
    from lmaudit.sandbox import Program

    program = Program(_read(file, "program"), _read(tests, "tests") if tests is not None else None)
    result = _sandbox(isolation, allow_unsandboxed, timeout).run(program)
    typer.echo(json.dumps(result.to_dict(), indent=2))
    raise typer.Exit(0 if result.passed else 1)
