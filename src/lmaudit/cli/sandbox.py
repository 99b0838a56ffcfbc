"""`lmaudit sandbox`: see which isolation this machine gives untrusted code, and run a file in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="The sandbox that code evals (humaneval, mbpp) run model-written programs in.")

Isolation = Annotated[str, typer.Option(help="auto (strongest available), bwrap, unshare or none")]
AllowUnsandboxed = Annotated[bool, typer.Option(help="permit running with no isolation at all")]


def _sandbox(isolation: str, allow_unsandboxed: bool, timeout: float = 10.0):
    from lmaudit.core.errors import LmauditError
    from lmaudit.sandbox import Limits, Sandbox

    try:
        return Sandbox(Limits(wall_seconds=timeout), isolation=isolation, workers=1,
                       allow_unsandboxed=allow_unsandboxed)
    except LmauditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command("info")
def info(isolation: Isolation = "auto", allow_unsandboxed: AllowUnsandboxed = False) -> None:
    """Print the isolation in force and the limits, as JSON (what a run manifest records)."""
    typer.echo(json.dumps(_sandbox(isolation, allow_unsandboxed).describe(), indent=2))


@app.command("run")
def run(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Python file to run")],
        timeout: Annotated[float, typer.Option(help="wall-clock seconds")] = 10.0,
        isolation: Isolation = "auto", allow_unsandboxed: AllowUnsandboxed = False) -> None:
    """Run a Python file in the sandbox and print its outcome as JSON; exit code 0 only if it passed."""
    result = _sandbox(isolation, allow_unsandboxed, timeout).run(file.read_text(encoding="utf-8"))
    typer.echo(json.dumps(result.to_dict(), indent=2))
    raise typer.Exit(0 if result.passed else 1)
