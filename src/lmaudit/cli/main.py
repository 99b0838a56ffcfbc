"""The `lmaudit` command. Thin: parse, call the Python API, print a table, write files."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from lmaudit.core.errors import ConfigError, LmauditError

# Plain click help (rich_markup_mode=None): typer's rich help formatter alone costs ~0.3 s of imports.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Evaluate, red-team and explain language models. Every command writes one sample log.")
console = Console(stderr=False)
errors = Console(stderr=True)
if not console.is_terminal:  # piped or logged output: never cut a table at 80 columns
    console.width = 160
if not errors.is_terminal:
    errors.width = 160


def friendly(command):
    """Turn LmauditError into one clear line and exit code 2; Ctrl-C keeps what is saved."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except LmauditError as exc:
            errors.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            errors.print("interrupted: everything finished so far is saved; rerun the same command to resume.")
            raise typer.Exit(130) from None

    return wrapper


def parse_task_args(pairs: list[str], flag: str = "--task-arg") -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} expects key=value, got {pair!r}")
        options[key.strip()] = _coerce(value)
    return options


def _coerce(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    if value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return [v for v in value.split("|")] if "|" in value else value


def build_tasks(names: str, options: dict[str, Any]) -> list[Any]:
    """Tasks from a comma-separated list of registered names and/or TOML task files."""
    from lmaudit.core.options import accepted
    from lmaudit.tasks import from_toml, get_task, task_entries

    entries = task_entries()
    tasks = []
    for name in [n.strip() for n in names.split(",") if n.strip()]:
        if name.endswith(".toml"):
            tasks.append(from_toml(name, **{k: v for k, v in options.items() if k == "num_fewshot"}))
        else:
            factory = entries[name].factory if name in entries else None
            tasks.append(get_task(name, **(accepted(factory, options) if factory else {})))
    if not tasks:
        raise ConfigError("no task given: --tasks name[,name...] (see `lmaudit tasks`)")
    return tasks


def results_table(results: dict[str, Any], group: str | None = None) -> Table:
    table = Table(title=f"lmaudit results: {results['model'].get('spec') or results['model']['fingerprint']}")
    for column in ("task", "group", "metric", "value", "± stderr", "95% CI", "n"):
        table.add_column(column, justify="right" if column in {"value", "± stderr", "n"} else "left")
    for task_name, task in results["tasks"].items():
        rows = [("all", task["metrics"])]
        keys = list(task.get("groups", {}))
        chosen = group if group in keys else (min(keys, key=lambda k: len(task["groups"][k])) if keys else None)
        if group and group not in keys:
            raise ConfigError(f"task {task_name} has no group '{group}'; groups: {', '.join(keys) or 'none'}")
        if chosen:
            rows += [(f"{chosen}={name}", metrics) for name, metrics in task["groups"][chosen].items()]
        for label, metrics in rows:
            for metric, summary in metrics.items():
                low, high = summary["ci95"]
                table.add_row(task_name, label, metric, f"{summary['value']:.4f}", f"{summary['stderr']:.4f}",
                              f"[{low:.3f}, {high:.3f}]", str(summary["n"]))
    return table


@app.command("eval")
@friendly
def eval_command(
    model: Annotated[str, typer.Option(help="model spec: smollm2, hf:<path|id>, gguf:<file>, openai:<model>@<url>")] = "smollm2",
    tasks: Annotated[str, typer.Option(help="comma-separated task names or .toml task files")] = "mmlu",
    limit: Annotated[Optional[int], typer.Option(help="at most N samples per task, spread over its groups")] = None,
    num_fewshot: Annotated[Optional[int], typer.Option(help="few-shot examples per prompt")] = None,
    batch_size: Annotated[str, typer.Option(help="sequences per forward pass, or 'auto' (a token budget)")] = "auto",
    output_dir: Annotated[Optional[Path], typer.Option(help="run directory; an existing one is resumed")] = None,
    seed: Annotated[int, typer.Option(help="seed for every random choice")] = 0,
    n: Annotated[Optional[int], typer.Option("-n", help="samples per problem (code tasks)")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="dataset folder (default $LMAUDIT_DATA_DIR)")] = None,
    task_arg: Annotated[list[str], typer.Option(help="extra task option key=value (repeatable)")] = [],
    model_arg: Annotated[list[str], typer.Option(help="extra model option key=value (repeatable), e.g. "
                                                      "http=aiohttp, device=cuda, dtype=bfloat16")] = [],
    max_concurrency: Annotated[Optional[int], typer.Option(help="requests in flight (API backends)")] = None,
    cache: Annotated[Optional[Path], typer.Option(help="response cache file (default ~/.cache/lmaudit)")] = None,
    private_cache: Annotated[bool, typer.Option(help="keep the response cache inside the run directory")] = False,
    contamination: Annotated[Optional[Path], typer.Option(
        help="flags file from `lmaudit contamination`: also report full / clean / contaminated scores")] = None,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Evaluate a model on tasks; writes manifest.json, samples.jsonl and results.json."""
    from lmaudit.core.options import accepted
    from lmaudit.models import load_model
    from lmaudit.models.base import _BACKENDS
    from lmaudit.runner import evaluate
    import importlib

    task_options = parse_task_args(task_arg)
    task_options.setdefault("seed", seed)  # tasks that sample (code evals) draw from the run seed
    for key, value in (("num_fewshot", num_fewshot), ("n", n), ("data_dir", str(data_dir) if data_dir else None)):
        if value is not None:
            task_options[key] = value
    task_list = build_tasks(tasks, task_options)
    size: int | str = batch_size if batch_size == "auto" else _positive_int(batch_size, "--batch-size")
    model_options = {"batch_size": size, "max_concurrency": max_concurrency}
    prefix = model.partition(":")[0]
    if prefix in _BACKENDS:
        module, factory_name, _ = _BACKENDS[prefix]
        factory = getattr(importlib.import_module(module), factory_name)
        # Shared flags go to the backends that take them; --model-arg options must all be taken.
        model_options = accepted(factory, {k: v for k, v in model_options.items() if v is not None})
    model_options.update(parse_task_args(model_arg, flag="--model-arg"))
    errors.print(f"loading model [bold]{model}[/] ...", highlight=False)
    loaded = load_model(model, **model_options)
    result = evaluate(loaded, task_list, output_dir, limit=limit, seed=seed, cache_path=cache,
                      shared_cache=not private_cache, progress=not quiet, model_spec=model,
                      options={"batch_size": batch_size, "num_fewshot": num_fewshot, "task_args": task_options})
    console.print(results_table(result.results))
    if contamination is not None:
        report_contamination(result.run_dir, task_list, contamination, seed)
    errors.print(f"run directory: {result.run_dir}  (model requests sent: {result.requests_sent}, "
                 f"cache hits: {result.cache_hits}, samples resumed: {result.samples_resumed})", highlight=False)


def report_contamination(run_dir: Path, tasks: list[Any], flags: Path, seed: int) -> None:
    """Scores on full, clean and contaminated subsets per task; written to contamination.json beside results."""
    from lmaudit.cli.contamination import split_table
    from lmaudit.contamination.split import split_scores
    from lmaudit.runner import RunDir

    run = RunDir(run_dir)
    records = run.records()
    report = {}
    for task in tasks:
        mine = [r for r in records if r.task == task.name]
        try:
            report[task.name] = split_scores(mine, flags, task.metrics, task.group_by, seed=seed)
        except LmauditError as exc:
            errors.print(f"contamination: {task.name}: {exc}", highlight=False)
            continue
        console.print(split_table(task.name, report[task.name]))
    run.write_json("contamination.json", {"flags": str(flags), "tasks": report})


def _positive_int(text: str, flag: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{flag} must be a positive integer or 'auto', got {text!r}") from None
    if value <= 0:
        raise ConfigError(f"{flag} must be positive, got {value}")
    return value


@app.command("tasks")
@friendly
def tasks_command(all_: Annotated[bool, typer.Option("--all", help="list every task of a family")] = False) -> None:
    """List the registered tasks."""
    from lmaudit.tasks import task_entries

    table = Table(title="tasks")
    table.add_column("name")
    table.add_column("description")
    seen_families = set()
    for name, entry in sorted(task_entries().items()):
        if entry.family and not all_:
            if entry.family not in seen_families:
                members = sum(1 for e in task_entries().values() if e.family == entry.family)
                table.add_row(entry.family, f"{entry.description} ({members} tasks; --all lists them)")
                seen_families.add(entry.family)
            continue
        table.add_row(name, entry.description)
    console.print(table)


@app.command("models")
@friendly
def models_command() -> None:
    """List the model spec prefixes."""
    from lmaudit.models import backends

    table = Table(title="model specs")
    table.add_column("spec")
    table.add_column("what")
    for prefix, help_text in backends().items():
        table.add_row(prefix if prefix == "smollm2" else f"{prefix}:...", help_text)
    console.print(table)
    console.print("API keys come from the environment (LMAUDIT_API_KEY or OPENAI_API_KEY), never the command line.")


@app.command("show")
@friendly
def show_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    group: Annotated[Optional[str], typer.Option(help="breakdown by this metadata key (e.g. subject)")] = None,
) -> None:
    """Print a run's results table."""
    from lmaudit.runner import RunDir

    run = RunDir(run_dir) if run_dir.is_dir() else None
    results = run.read_json("results.json") if run else None
    if results is None:
        raise ConfigError(f"{run_dir} has no results.json: not a finished run directory")
    console.print(results_table(results, group))
    manifest = run.read_json("manifest.json") or {}
    for entry in manifest.get("invocations", []):
        console.print(f"invocation {entry['started']}: {entry['seconds']} s, {entry['requests_sent']} requests sent, "
                      f"{entry['cache_hits']} cache hits", highlight=False)


def _mount_capabilities() -> None:
    """Capability commands; each module imports only typer at start-up, so --help stays fast."""
    from lmaudit.cli import calibration, contamination, robustness, safety, sandbox, scaling, serve

    app.command("redteam")(safety.redteam)
    app.command("overrefusal")(safety.overrefusal)

    app.add_typer(robustness.app)  # unnamed: its command is the top-level `lmaudit consistency`
    app.add_typer(calibration.app)  # `lmaudit calibration`

    app.add_typer(sandbox.app, name="sandbox", help="Run untrusted code in the sandbox code evals use.")
    app.add_typer(serve.app, name="serve", help="Serve a model over an OpenAI-compatible HTTP API.")
    app.add_typer(scaling.app, name="scaling")
    app.add_typer(contamination.app, name="contamination",
                  help="Find benchmark items in training data (substring, ngram) or score membership (mink).")


_mount_capabilities()


def main() -> None:  # pragma: no cover - entry point
    app(prog_name="lmaudit")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
