"""`lmaudit calibration`: option probabilities of a letter-choice task, reliability diagrams, ECE / MCE / Brier."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    cli_command,
    console,
    errors,
    load_model_for_cli,
    new_app,
    output_dir as check_output_dir,
)
from lmaudit.cli.robustness import GroupBy, NumFewshot, TaskName, load_task, split_list, summary_cell

app = new_app("Are the model's answer probabilities calibrated?", no_args_is_help=False)


def _calibration(*, model: str, model_arg: list[str], task: str, limit: int | None, output_dir: Path | None,
                 seed: int, bins: int, num_fewshot: int | None, data_dir: Path | None, group_by: str | None,
                 cache: Path | None, quiet: bool) -> None:
    from rich.table import Table

    from lmaudit.calibration import run_calibration

    base = load_task(task, num_fewshot, data_dir)
    run = run_calibration(load_model_for_cli(model, model_arg), base, output_dir, limit=limit, seed=seed,
                          group_by=split_list(group_by), n_bins=bins, cache_path=cache, progress=not quiet,
                          model_spec=model)
    overall = run.report.overall
    table = Table(title=f"calibration: {model} on {base.name} ({overall.n_items} items; 95% bootstrap CI)")
    table.add_column("metric")
    table.add_column("value [95% CI]")
    rows = [("accuracy", overall.accuracy), ("mean top probability", overall.confidence),
            ("Brier score", overall.brier)]
    if overall.outside_mass is not None:
        rows.append(("probability outside the options", overall.outside_mass))
    for reliability in overall.reliability:
        where = f"{reliability.view}, {reliability.binning} bins"
        rows += [(f"ECE ({where})", reliability.ece), (f"MCE ({where})", reliability.mce)]
    for name, summary in rows:
        table.add_row(name, summary_cell(summary))
    console.print(table)
    errors.print(f"run directory: {run.run_dir}  (model requests sent: {run.requests_sent}); tables "
                 "calibration*.json(l), plots reliability_*.png", highlight=False)


@app.command("calibration")
@cli_command
def calibration_command(
    model: ModelOpt = "smollm2",
    model_arg: ModelArgOpt = [],
    tasks: TaskName = "mmlu",
    limit: LimitOpt = None,
    output_dir: OutputDirOpt = None,
    seed: SeedOpt = 0,
    bins: Annotated[int, typer.Option(min=2, help="reliability bins (equal-width and equal-mass)")] = 10,
    num_fewshot: NumFewshot = None,
    data_dir: DataDirOpt = None,
    group_by: GroupBy = None,
    cache: CacheOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Calibration of the option probabilities (answer-letter log-probabilities renormalised over the options):
    reliability diagrams (every option, top choice), ECE, MCE, Brier with CIs, per group; resumable."""
    check_output_dir(output_dir)
    _calibration(model=model, model_arg=model_arg, task=tasks, limit=limit, output_dir=output_dir, seed=seed,
                 bins=bins, num_fewshot=num_fewshot, data_dir=data_dir, group_by=group_by, cache=cache, quiet=quiet)
