"""`lmaudit consistency`: MCQ variants of a task's items, REVAS / consistency tables and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Does the model give the same answer when a multiple-choice item is reordered or reworded?")

ModelSpec = Annotated[str, typer.Option(help="model spec: smollm2, hf:<path|id>, gguf:<file>, openai:<model>@<url>")]
TaskName = Annotated[str, typer.Option(help="a letter-choice MCQ task (mmlu, mmlu_<subject>, demo_mcq, a .toml)")]
Limit = Annotated[Optional[int], typer.Option(help="at most N source items, spread over the task's groups")]
OutputDir = Annotated[Optional[Path], typer.Option(help="run directory; an existing one is resumed")]
Seed = Annotated[int, typer.Option(help="seed for every random choice (variants, bootstrap CIs)")]
NumFewshot = Annotated[Optional[int], typer.Option(help="few-shot examples per prompt")]
DataDir = Annotated[Optional[Path], typer.Option(help="dataset folder (default $LMAUDIT_DATA_DIR)")]
GroupBy = Annotated[Optional[str], typer.Option(help="comma-separated metadata columns to break down by "
                                                     "(default: the task's, e.g. subject,category)")]
Cache = Annotated[Optional[Path], typer.Option(help="response cache file (default ~/.cache/lmaudit)")]
Quiet = Annotated[bool, typer.Option(help="no progress bar")]
ModelArg = Annotated[list[str], typer.Option(help="backend option key=value (repeatable), e.g. api=chat and "
                                                  "loglikelihood=letters for a chat-only API's top_logprobs")]


def load_task(task: str, num_fewshot: int | None, data_dir: Path | None) -> Any:
    """One task by name or .toml file, with the same option handling as `lmaudit eval`."""
    from lmaudit.cli.main import build_tasks
    from lmaudit.core.errors import ConfigError

    options: dict[str, Any] = {}
    if num_fewshot is not None:
        options["num_fewshot"] = num_fewshot
    if data_dir is not None:
        options["data_dir"] = str(data_dir)
    tasks = build_tasks(task, options)
    if len(tasks) != 1:
        raise ConfigError(f"--task takes one task, got {len(tasks)}: {task}")
    return tasks[0]


def load_backend(model: str, model_arg: list[str]) -> Any:
    from lmaudit.cli.main import errors, parse_task_args
    from lmaudit.models import load_model

    errors.print(f"loading model [bold]{model}[/] ...", highlight=False)
    return load_model(model, **parse_task_args(model_arg))


def split_list(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def summary_cell(summary: Any) -> str:
    return f"{summary.value:.3f} [{summary.ci_low:.3f}, {summary.ci_high:.3f}]"


def _consistency(*, model: str, model_arg: list[str], task: str, variants: str, permutations: int,
                 limit: int | None, output_dir: Path | None, seed: int, num_fewshot: int | None,
                 data_dir: Path | None, group_by: str | None, cache: Path | None, quiet: bool) -> None:
    from rich.table import Table

    from lmaudit.cli.main import console, errors
    from lmaudit.robustness import run_consistency
    from lmaudit.robustness.tasks import check_kinds

    kinds = split_list(variants) or []
    check_kinds(kinds)  # before the model loads: a typo should cost nothing
    base = load_task(task, num_fewshot, data_dir)
    run = run_consistency(load_backend(model, model_arg), base, output_dir, variants=kinds,
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
def consistency_command(
    model: ModelSpec = "smollm2",
    model_arg: ModelArg = [],
    task: TaskName = "mmlu",
    variants: Annotated[str, typer.Option(help="comma-separated: rotate,permute,relabel,truefalse,drop,nota")] =
    "rotate,permute,relabel,truefalse,drop,nota",
    permutations: Annotated[int, typer.Option(help="random option orders per item (permute)")] = 2,
    limit: Limit = None,
    output_dir: OutputDir = None,
    seed: Seed = 0,
    num_fewshot: NumFewshot = None,
    data_dir: DataDir = None,
    group_by: GroupBy = None,
    cache: Cache = None,
    quiet: Quiet = False,
) -> None:
    """Answer consistency across MCQ variants: accuracy per variant, consistency, consistent accuracy, REVAS rate,
    true/false conversion; writes robustness_*.jsonl tables and robustness_*.png plots into the run directory."""
    options = dict(locals())  # first statement: exactly the command's options
    from lmaudit.cli.main import friendly

    friendly(_consistency)(**options)
