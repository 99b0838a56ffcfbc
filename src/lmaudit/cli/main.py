"""The `lmaudit` command. Thin: parse, call the Python API, print a table, write files.

Every command follows the convention of `lmaudit.cli.options` (shared option names, `@cli_command`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from lmaudit.cli.options import (
    CacheOpt,
    DataDirOpt,
    LimitOpt,
    ModelArgOpt,
    ModelOpt,
    OutputDirOpt,
    PrivateCacheOpt,
    QuietOpt,
    SeedOpt,
    TaskArgOpt,
    TasksOpt,
    build_tasks,
    cli_command,
    console,
    errors,
    load_model_for_cli,
    output_dir as check_output_dir,
    parse_pairs,
)
from lmaudit.core.errors import ConfigError, LmauditError

# Plain click help (rich_markup_mode=None): typer's rich help formatter alone costs ~0.3 s of imports.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Evaluate, red-team and explain language models. Every command writes one sample log.")


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
                table.add_row(task_name, label, metric, _number(summary["value"]), _number(summary["stderr"]),
                              f"[{_number(low, 3)}, {_number(high, 3)}]", str(summary["n"]))
    return table


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@app.command("eval")
@cli_command
def eval_command(
    model: ModelOpt = "smollm2",
    tasks: TasksOpt = "mmlu",
    limit: LimitOpt = None,
    num_fewshot: Annotated[Optional[int], typer.Option(min=0, help="few-shot examples per prompt")] = None,
    batch_size: Annotated[str, typer.Option(help="sequences per forward pass, or 'auto' (a token budget)")] = "auto",
    output_dir: OutputDirOpt = None,
    seed: SeedOpt = 0,
    samples: Annotated[Optional[int], typer.Option("--samples", "-n", min=1,
                                                   help="programs sampled per problem (code tasks)")] = None,
    data_dir: DataDirOpt = None,
    task_arg: TaskArgOpt = [],
    model_arg: ModelArgOpt = [],
    max_concurrency: Annotated[Optional[int], typer.Option(min=1, help="requests in flight (API backends)")] = None,
    cache: CacheOpt = None,
    private_cache: PrivateCacheOpt = False,
    contamination: Annotated[Optional[Path], typer.Option(
        help="flags file (or run directory) from `lmaudit contamination`: also report full / clean / "
             "contaminated scores")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Evaluate a model on tasks; writes manifest.json, samples.jsonl and results.json."""
    from lmaudit.runner import evaluate

    typed = parse_pairs(task_arg, "--task-arg")
    task_options = {"seed": seed, **typed}  # tasks that sample (code evals) draw from the run seed
    for key, value in (("num_fewshot", num_fewshot), ("n", samples), ("data_dir", str(data_dir) if data_dir else None)):
        if value is not None:
            task_options[key] = value
    task_list = build_tasks(tasks, task_options, user_keys=typed)
    flags = _flags_file(contamination) if contamination is not None else None
    size: int | str = batch_size if batch_size == "auto" else _positive_int(batch_size, "--batch-size")
    check_output_dir(output_dir)
    loaded = load_model_for_cli(model, model_arg, batch_size=size, max_concurrency=max_concurrency)
    result = evaluate(loaded, task_list, output_dir, limit=limit, seed=seed, cache_path=cache,
                      shared_cache=not private_cache, progress=not quiet, model_spec=model,
                      options={"batch_size": batch_size, "num_fewshot": num_fewshot, "task_args": task_options})
    console.print(results_table(result.results))
    if flags is not None:
        report_contamination(result.run_dir, task_list, flags, seed)
    errors.print(f"run directory: {result.run_dir}  (model requests sent: {result.requests_sent}, "
                 f"cache hits: {result.cache_hits}, samples resumed: {result.samples_resumed})", highlight=False)


def _flags_file(path: Path) -> Path:
    """A flags file, or the flags.jsonl of a contamination run directory."""
    flags = path / "flags.jsonl" if path.is_dir() else path
    if not flags.is_file():
        raise ConfigError(f"--contamination {path}: no flags file there (give a flags .jsonl or a contamination "
                          f"run directory)")
    return flags


def report_contamination(run_dir: Path, tasks: list[Any], flags: Path, seed: int) -> None:
    """Scores on full, clean and contaminated subsets per task; written to contamination.json beside results."""
    from lmaudit.cli.contamination import split_table
    from lmaudit.contamination import split_scores
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
@cli_command
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
@cli_command
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
@cli_command
def show_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    group: Annotated[Optional[str], typer.Option(help="breakdown by this metadata key (e.g. subject)")] = None,
) -> None:
    """Print a run's results table (any kind of run directory)."""
    from lmaudit.cli.report import envelope_table
    from lmaudit.report import read_summary

    summary = read_summary(run_dir)  # one clear line for a missing, empty, unfinished or damaged run directory
    is_eval = summary.kind == "eval" and "tasks" in summary.results and "model" in summary.results
    console.print(results_table(summary.results, group) if is_eval else envelope_table(summary, group))
    for entry in summary.manifest.get("invocations", []):
        console.print(f"invocation {entry.get('started')}: {entry.get('seconds')} s, {entry.get('requests_sent')} "
                      f"requests sent, {entry.get('cache_hits')} cache hits", highlight=False)


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
    from lmaudit.cli import llmuse  # `lmaudit llmuse build-reference|estimate|validate|excess`
    app.add_typer(llmuse.app, name="llmuse")
    from lmaudit.cli import influence  # `lmaudit influence fit|scores`
    app.add_typer(influence.app, name="influence")
    from lmaudit.cli import report  # `lmaudit report`, `lmaudit map`

    app.command("report")(report.report)
    app.command("map")(report.map_command)
    from lmaudit.cli import tokens  # `lmaudit tokens premium|cost|vs-accuracy|loss`
    app.add_typer(tokens.app, name="tokens")
    from lmaudit.cli import leakage  # `lmaudit leakage run`
    app.add_typer(leakage.app, name="leakage")


_mount_capabilities()


def main(argv: list[str] | None = None) -> int:
    """The `lmaudit` entry point: a usage error (unknown option, bad value) is one line and exit 2 as well."""
    from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer (pinned) ships its own click

    try:
        code = app(args=argv, prog_name="lmaudit", standalone_mode=False)
    except NoArgsIsHelpError as exc:  # a group called without a command: its help, as asked for
        console.print(exc.ctx.get_help(), highlight=False)
        return 0
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "lmaudit"
        errors.print(f"[bold red]error:[/] {exc.format_message()} (see `{where} --help`)", highlight=False,
                     soft_wrap=True)
        return 2
    except typer.Abort:
        errors.print("interrupted: everything finished so far is saved; rerun the same command to resume.")
        return 130
    return code if isinstance(code, int) else 0



def run() -> None:  # the console script
    sys.exit(main())


if __name__ == "__main__":
    run()
