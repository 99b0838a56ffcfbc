"""`lmaudit consistency`: MCQ variants of a task's items, REVAS / consistency tables and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from lmaudit.cli.options import (
    CacheOpt,
    DataDirOpt,
    LimitOpt,
    ModelArgOpt,
    ModelOpt,
    OutputDirOpt,
    QuietOpt,
    SeedOpt,
    build_tasks,
    cli_command,
    console,
    errors,
    load_model_for_cli,
    new_app,
    output_dir as check_output_dir,
)

app = new_app("Does the model give the same answer when a multiple-choice item is reordered or reworded?",
              no_args_is_help=False)

TaskName = Annotated[str, typer.Option("--tasks", help="one letter-choice MCQ task (mmlu, mmlu_<subject>, demo_mcq, "
                                                       "a .toml)")]
NumFewshot = Annotated[Optional[int], typer.Option(min=0, help="few-shot examples per prompt")]
GroupBy = Annotated[Optional[str], typer.Option(help="comma-separated metadata columns to break down by "
                                                     "(default: the task's, e.g. subject,category)")]


def load_task(task: str, num_fewshot: int | None, data_dir: Path | None) -> Any:
    """One task by name or .toml file, with the same option handling as `lmaudit eval`."""
    from lmaudit.core.errors import ConfigError

    options: dict[str, Any] = {}
    if num_fewshot is not None:
        options["num_fewshot"] = num_fewshot
    if data_dir is not None:
        options["data_dir"] = str(data_dir)
    tasks = build_tasks(task, options)
    if len(tasks) != 1:
        raise ConfigError(f"--tasks takes one task here, got {len(tasks)}: {task}")
    return tasks[0]


def split_list(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def summary_cell(summary: Any) -> str:
    return f"{summary.value:.3f} [{summary.ci_low:.3f}, {summary.ci_high:.3f}]"


def _consistency(*, model: str, model_arg: list[str], task: str, variants: str, permutations: int,
                 limit: int | None, output_dir: Path | None, seed: int, num_fewshot: int | None,
                 data_dir: Path | None, group_by: str | None, cache: Path | None, quiet: bool) -> None:
    from rich.table import Table

    from lmaudit.robustness import run_consistency
    from lmaudit.robustness.tasks import check_kinds

    kinds = split_list(variants) or []
    check_kinds(kinds)  # before the model loads: a typo should cost nothing
    base = load_task(task, num_fewshot, data_dir)
    run = run_consistency(load_model_for_cli(model, model_arg), base, output_dir, variants=kinds,
                          permutations=permutations, limit=limit, seed=seed, group_by=split_list(group_by),
                          cache_path=cache, progress=not quiet, model_spec=model)
    overall = run.report.overall
    table = Table(title=f"REVAS / consistency: {model} on {base.name} ({overall.n_items} items; 95% CI)")
    for column in ("family", "accuracy", "consistency", "consistent accuracy", "REVAS rate", "n"):
        table.add_column(column)
    original = next(r for r in overall.variants if r.variant == "original")
    table.add_row("original", summary_cell(original.accuracy), "", "", "", str(original.accuracy.n))
    for row in overall.families:
        table.add_row(row.family, summary_cell(row.accuracy), summary_cell(row.consistency),
                      summary_cell(row.consistent_accuracy), summary_cell(row.revas_rate), str(row.accuracy.n))
    console.print(table)
    if overall.truefalse:
        tf = overall.truefalse
        table = Table(title="true/false conversion (one yes/no item per option)")
        table.add_column("metric")
        table.add_column("share of items [95% CI]")
        for name, value in vars(tf).items():
            table.add_row(name.replace("_", " "), summary_cell(value))
        console.print(table)
    errors.print(f"run directory: {run.run_dir}  (model requests sent: {run.requests_sent}, cache hits: "
                 f"{run.cache_hits}); tables robustness_*.jsonl, plots robustness_*.png", highlight=False)


@app.command("consistency")
@cli_command
def consistency_command(
    model: ModelOpt = "smollm2",
    model_arg: ModelArgOpt = [],
    tasks: TaskName = "mmlu",
    variants: Annotated[str, typer.Option(help="comma-separated: rotate,permute,relabel,truefalse,drop,nota")] =
    "rotate,permute,relabel,truefalse,drop,nota",
    permutations: Annotated[int, typer.Option(help="random option orders per item (permute)")] = 2,
    limit: LimitOpt = None,
    output_dir: OutputDirOpt = None,
    seed: SeedOpt = 0,
    num_fewshot: NumFewshot = None,
    data_dir: DataDirOpt = None,
    group_by: GroupBy = None,
    cache: CacheOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Answer consistency across MCQ variants: accuracy per variant, consistency, consistent accuracy, REVAS rate,
    true/false conversion; writes robustness_*.jsonl tables and robustness_*.png plots into the run directory."""
    check_output_dir(output_dir)
    _consistency(model=model, model_arg=model_arg, task=tasks, variants=variants, permutations=permutations,
                 limit=limit, output_dir=output_dir, seed=seed, num_fewshot=num_fewshot, data_dir=data_dir,
                 group_by=group_by, cache=cache, quiet=quiet)
