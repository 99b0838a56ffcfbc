"""The CLI convention: one set of option names, one error decorator, one way to load a model.

Every command is `@cli_command` and takes its shared options from the aliases below, so the same flag means
the same thing everywhere:

    --model SPEC         --model-arg KEY=VALUE (repeatable)     --tasks NAME[,NAME]
    --output-dir DIR     --limit N (>= 1)                         --seed N
    --data-dir DIR       --quiet

Errors a user can act on (`LmauditError`) print one line and exit 2, with no traceback; they are checked before
the model loads wherever they can be (options, files, the output directory). Ctrl-C exits 130 and says the run
resumes. This module imports only typer and rich, so `lmaudit --help` stays fast.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console

from lmaudit.core.errors import ConfigError, LmauditError, UnknownNameError
from lmaudit.core.redact import redact

console = Console(stderr=False)
errors = Console(stderr=True)
if not console.is_terminal:  # piped or logged output: never cut a table at 80 columns
    console.width = 160
if not errors.is_terminal:
    errors.width = 160

# -- the shared options ---------------------------------------------------------------------------------
ModelOpt = Annotated[str, typer.Option("--model", help="model spec: smollm2, hf:<path|id>, gguf:<file>, "
                                                       "openai:<model>@<url> (see `lmaudit models`)")]
OptionalModelOpt = Annotated[Optional[str], typer.Option("--model", help="model spec (see `lmaudit models`)")]
ModelArgOpt = Annotated[list[str], typer.Option("--model-arg", help="model option KEY=VALUE (repeatable), e.g. "
                                                                    "dtype=bfloat16, device=cuda, http=sdk")]
TasksOpt = Annotated[str, typer.Option("--tasks", help="comma-separated task names or .toml task files "
                                                       "(see `lmaudit tasks`)")]
TaskArgOpt = Annotated[list[str], typer.Option("--task-arg", help="task option KEY=VALUE (repeatable)")]
OutputDirOpt = Annotated[Optional[Path], typer.Option("--output-dir", help="run directory; an existing one is "
                                                                           "resumed (default runs/<time>-<name>)")]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", min=1, help="at most N samples per task, spread "
                                                                        "over its groups")]
SeedOpt = Annotated[int, typer.Option("--seed", help="seed for every random choice")]
DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="dataset folder (default "
                                                                       "$LMAUDIT_DATA_DIR)")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="no progress bars")]
CacheOpt = Annotated[Optional[Path], typer.Option("--cache", help="response cache file (default "
                                                                  "~/.cache/lmaudit/responses.sqlite)")]
PrivateCacheOpt = Annotated[bool, typer.Option("--private-cache", help="keep the response cache inside the run "
                                                                       "directory")]

F = TypeVar("F", bound=Callable[..., Any])


def cli_command(function: F) -> F:
    """One line and exit 2 for an LmauditError; exit 130 on Ctrl-C with what was saved; nothing else changes."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except LmauditError as exc:
            errors.print(f"[bold red]error:[/] {redact(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            errors.print("interrupted: everything finished so far is saved; rerun the same command to resume.")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def new_app(help_text: str, **settings: Any) -> typer.Typer:
    """A sub-command group with the settings every lmaudit command shares (plain help, no rich tracebacks)."""
    return typer.Typer(add_completion=False, no_args_is_help=settings.pop("no_args_is_help", True),
                       pretty_exceptions_enable=False, rich_markup_mode=None, help=help_text, **settings)


# -- KEY=VALUE options ----------------------------------------------------------------------------------
def coerce(value: str) -> Any:
    """'3' -> 3, '0.5' -> 0.5, 'true' -> True, 'a|b' -> ['a', 'b'], anything else stays a string."""
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    if value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return value.split("|") if "|" in value else value


def parse_pairs(pairs: Iterable[str], flag: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects KEY=VALUE, got {pair!r}")
        options[key.strip()] = coerce(value)
    return options


def check_keys(options: dict[str, Any], valid: Iterable[str], what: str) -> None:
    """Refuse a key that is not valid, naming the closest valid one."""
    valid = sorted(set(valid))
    for key in options:
        if key not in valid:
            raise UnknownNameError(what, key, valid)


# -- models, directories --------------------------------------------------------------------------------
def model_options(spec: str, model_args: Iterable[str], **shared: Any) -> dict[str, Any]:
    """The options to load `spec` with: shared flags the backend takes, plus every --model-arg, all checked.

    `shared` holds options a command offers as flags (batch_size, max_concurrency); those the backend does not
    take are dropped (None values too), while a --model-arg it does not take is an error.
    """
    from lmaudit.models.base import check_model_options, model_options as backend_options

    valid = backend_options(spec)
    options = {k: v for k, v in shared.items() if v is not None and (valid is None or k in valid)}
    extra = parse_pairs(model_args, "--model-arg")
    check_model_options(spec, extra)
    options.update(extra)
    return options


def load_model_for_cli(spec: str, model_args: Iterable[str] = (), **shared: Any) -> Any:
    """Check the spec and options, say what is loading, then load (the slow part comes last)."""
    from lmaudit.models import load_model

    options = model_options(spec, model_args, **shared)
    errors.print(f"loading model [bold]{redact(spec)}[/] ...", highlight=False)  # never a URL credential
    return load_model(spec, **options)


def output_dir(path: Path | None) -> Path | None:
    """Check an --output-dir before any slow work: it must be (or become) a writable directory."""
    from lmaudit.runner.rundir import prepare_dir

    return prepare_dir(path) if path is not None else None


def existing_path(path: Path, what: str) -> Path:
    if not path.exists():
        raise ConfigError(f"{what} {path} does not exist")
    return path


# -- tasks ----------------------------------------------------------------------------------------------
def task_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError("no task given: --tasks NAME[,NAME...] (see `lmaudit tasks`)")
    return names


def build_tasks(names: str, options: dict[str, Any], *, user_keys: Iterable[str] = ()) -> list[Any]:
    """Tasks from a comma-separated list of registered names and/or TOML task files.

    Each task gets the options its factory takes. `user_keys` are the keys the user typed (--task-arg): one that
    no listed task takes is refused with the closest valid name, so a typo never silently keeps a default.
    """
    from lmaudit.core.options import accepted, parameter_names
    from lmaudit.tasks import from_toml, get_task, task_entries

    entries = task_entries()
    tasks, valid, open_ended = [], set(), False
    for name in task_names(names):
        if name.endswith(".toml"):
            toml_options = {k: v for k, v in options.items() if k == "num_fewshot"}
            valid.add("num_fewshot")
            tasks.append(from_toml(name, **toml_options))
            continue
        if name not in entries:
            raise UnknownNameError("task", name, list(entries))
        factory = entries[name].factory
        names_taken = parameter_names(factory)
        open_ended |= names_taken is None
        valid.update(names_taken or ())
        tasks.append(get_task(name, **accepted(factory, options)))
    if not open_ended:
        check_keys({key: None for key in user_keys}, valid, "--task-arg for these tasks")
    return tasks
