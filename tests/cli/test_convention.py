"""Every command follows one convention: --help works, a bad argument is one line and exit 2 (no traceback),
and the shared options have the same names everywhere. The command list is read from the CLI itself, so a new
command is checked the day it is mounted."""

from __future__ import annotations

import pytest
import typer

from lmaudit.cli.main import app, main

# Spellings the convention replaced; none may come back. (`--output`/-o names a single output file, such as a
# report; a run directory is always --output-dir.)
RETIRED = {"--task", "--out", "--json", "--progress", "--no-progress", "--n"}
SHARED = {"model": "--model", "model_arg": "--model-arg", "tasks": "--tasks", "output_dir": "--output-dir",
          "limit": "--limit", "seed": "--seed", "data_dir": "--data-dir", "quiet": "--quiet"}


def _commands() -> list[tuple[tuple[str, ...], object]]:
    """(path, click command) for every runnable command: leaves, and groups that run without a sub-command."""
    root = typer.main.get_command(app)
    found = []

    def walk(command, path):
        sub = getattr(command, "commands", None)
        if sub:
            if getattr(command, "invoke_without_command", False) and path:
                found.append((path, command))
            for name, child in sub.items():
                walk(child, (*path, name))
        elif path:
            found.append((path, command))

    walk(root, ())
    return found


COMMANDS = _commands()
IDS = [" ".join(path) for path, _ in COMMANDS]


def _takes(command, flag: str) -> bool:
    return any(flag in param.opts for param in command.params)


def _positional(command) -> list:
    return [p for p in command.params if p.param_type_name == "argument" and p.required]


def _required(command) -> list:
    return [p for p in command.params if p.required]


def _subset(test):
    chosen = [(p, c) for p, c in COMMANDS if test(c)]
    return pytest.mark.parametrize("path,command", chosen, ids=[" ".join(p) for p, _ in chosen])


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_command_tree_is_complete():
    names = set(IDS)
    for expected in ("eval", "show", "tasks", "models", "redteam", "overrefusal", "consistency", "calibration",
                     "contamination", "scaling ladder", "scaling fit", "serve", "sandbox info"):
        assert expected in names, f"{expected} is not mounted"


@pytest.mark.parametrize("path,command", COMMANDS, ids=IDS)
def test_help(path, command, capsys):
    code, out, _ = _run(capsys, *path, "--help")
    assert code == 0 and out.startswith(f"Usage: lmaudit {' '.join(path)}")


@pytest.mark.parametrize("path,command", COMMANDS, ids=IDS)
def test_an_unknown_option_is_one_line_and_exit_2(path, command, capsys):
    code, out, err = _run(capsys, *path, "--no-such-option")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "No such option: --no-such-option" in lines[0] and "Traceback" not in err


@_subset(lambda c: _takes(c, "--limit"))
def test_limit_zero_is_refused_before_any_work(path, command, capsys):
    code, _, err = _run(capsys, *path, "--limit", "0")
    assert code == 2 and "--limit" in err and len(err.strip().splitlines()) == 1


@_subset(lambda c: _takes(c, "--model") and not _required(c))
def test_an_unknown_model_spec_is_refused_before_loading(path, command, capsys, tmp_path, data_dir):
    # data_dir: commands that read a benchmark look for its data before they load a model
    argv = [*path, "--model", "hff:gpt2"]
    if path == ("contamination",):
        argv += ["--method", "mink"]
    if path == ("serve",):
        argv += ["--port", "0"]
    code, _, err = _run(capsys, *argv)
    assert code == 2 and "unknown model spec prefix 'hff'" in err, err
    assert "Traceback" not in err and "loading model" not in err


@_subset(_positional)
def test_a_missing_input_path_is_one_line_and_exit_2(path, command, capsys, tmp_path):
    missing = [str(tmp_path / f"missing-{i}") for i, _ in enumerate(_positional(command))]
    code, _, err = _run(capsys, *path, *missing)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_shared_options_have_one_spelling_everywhere():
    problems = []
    for path, command in COMMANDS:
        for param in command.params:
            opts = set(param.opts) | set(getattr(param, "secondary_opts", []))
            if opts & RETIRED:
                problems.append(f"{' '.join(path)}: {sorted(opts & RETIRED)}")
            if param.name in SHARED and SHARED[param.name] not in opts:
                problems.append(f"{' '.join(path)}: {param.name} spelled {sorted(opts)}")
    assert problems == []


def test_unknown_keys_are_refused_with_the_closest_name(capsys):
    code, _, err = _run(capsys, "eval", "--tasks", "demo_mcq", "--task-arg", "num_fewshots=2")
    assert code == 2 and "Did you mean 'num_fewshot'?" in err
    code, _, err = _run(capsys, "eval", "--tasks", "demo_mcq", "--model-arg", "dtyp=bfloat16")
    assert code == 2 and "Did you mean 'dtype'?" in err and "loading model" not in err


def test_an_output_dir_that_is_a_file_is_refused_before_the_model_loads(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = _run(capsys, "eval", "--tasks", "demo_mcq", "--output-dir", str(blocker))
    assert code == 2 and "exists and is not a directory" in err and "loading model" not in err
