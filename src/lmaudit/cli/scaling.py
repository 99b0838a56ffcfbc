"""`lmaudit scaling ...`: train a Transformer ladder and predict the big run; fit scaling laws to runs tables."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lmaudit.cli.options import QuietOpt, cli_command, console, new_app

app = new_app("Predictable scaling: train a ladder, fit scaling laws, predict the big run before training it.")


def _ci(est) -> str:
    return f"{est.value:.6g} [{est.ci_low:.6g}, {est.ci_high:.6g}]"


@app.command()
@cli_command
def ladder(
    output_dir: Path = typer.Option(Path("runs/scaling-ladder"), "--output-dir",
                                    help="Folder for data, runs, prediction, plot and results.json; resumed."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Folder of .txt/.md/.py files, a .txt file or a "
                                          ".jsonl/.csv table with a 'text' field. Default: the Python stdlib."),
    preset: str = typer.Option("default", "--preset", help="Ladder recipe: 'default' or 'tiny' (seconds, for trying)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for initialisation, data order and bootstrap."),
    resamples: Optional[int] = typer.Option(None, "--resamples", help="Bootstrap resamples for the fit."),
    threads: int = typer.Option(1, "--threads", min=1, max=2, help="torch threads (a second thread slows these "
                                "small models down)."),
    quiet: QuietOpt = False,
) -> None:
    """Train the ladder, fit L(C), register the target's predicted loss, then train the target and compare."""
    import os
    from dataclasses import replace

    # Before torch loads OpenMP: threads that spin while waiting for a descheduled peer make training many times
    # slower on a shared CPU; passive waiting costs nothing when the cores are free.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    from lmaudit.core.errors import UnknownNameError
    from lmaudit.scaling.ladder import PRESETS, run_ladder

    if preset not in PRESETS:
        raise UnknownNameError("ladder preset", preset, list(PRESETS))
    config = PRESETS[preset]
    config = replace(config, seed=config.seed if seed is None else seed,
                     resamples=config.resamples if resamples is None else resamples)
    result = run_ladder(output_dir, config=config, corpus=corpus, threads=threads, progress=not quiet,
                        log=console.print)
    pred = result.prediction.loss
    console.print(f"[bold]predicted[/bold] {_ci(pred)}  [bold]actual[/bold] {result.target.loss:.6g}  "
                  f"relative error {100 * result.relative_error:+.2f}%  ({result.wall_seconds:.0f}s)")
    for name, path in result.files.items():
        console.print(f"{name}: {path}")


@app.command()
@cli_command
def fit(
    runs: Optional[Path] = typer.Option(None, "--runs", help="Runs table (.csv/.json/.jsonl): loss and compute, "
                                        "or loss, n_params and tokens."),
    pass_rates: Optional[Path] = typer.Option(None, "--pass-rates", help="Long table of model, compute, problem, "
                                              "pass_rate: fits -E[log pass_rate] = alpha*C^(-k)."),
    law: str = typer.Option("auto", "--law", help="For --runs: 'compute' (L(C)), 'params' (L(N, D)), 'both', or "
                            "'auto' (L(C), plus L(N, D) where N and D vary independently)."),
    role: Optional[str] = typer.Option(None, "--role", help="Fit only rows with this role (e.g. 'ladder')."),
    target_compute: Optional[float] = typer.Option(None, "--target-compute", help="Extrapolate to this C."),
    budget: Optional[float] = typer.Option(None, "--budget", help="Compute-optimal N and D for this C (L(N, D))."),
    buckets: int = typer.Option(3, "--buckets", min=1, help="Difficulty buckets for --pass-rates."),
    resamples: int = typer.Option(1000, "--resamples", min=10, help="Bootstrap resamples."),
    confidence: float = typer.Option(0.95, "--confidence", min=0.5, max=0.999, help="Interval level."),
    seed: int = typer.Option(0, "--seed"),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", help="Write results.json and the figures "
                                              "(fit.png for --runs, pass-rates.png for --pass-rates) here."),
) -> None:
    """Fit scaling laws with bootstrap confidence intervals."""
    from lmaudit.cli.options import output_dir as check_output_dir
    from lmaudit.core.errors import ConfigError, DataError, UnknownNameError
    from lmaudit.core.output import write_json_atomic
    from lmaudit.core.results import MetricRow, envelope
    from lmaudit.scaling import fit as fits
    from lmaudit.scaling.runs import read_pass_rates, read_runs

    if runs is None and pass_rates is None:
        raise ConfigError("give --runs (a runs table) and/or --pass-rates (a pass-rate table)")
    if law not in {"auto", "compute", "params", "both"}:
        raise UnknownNameError("law", law, ["auto", "compute", "params", "both"])
    check_output_dir(output_dir)
    plot = output_dir / "fit.png" if output_dir is not None else None
    report: dict = {}
    rows: list[MetricRow] = []
    options = {"resamples": resamples, "confidence": confidence, "seed": seed}
    if runs is not None:
        table = read_runs(runs)
        if role is not None:
            table = [r for r in table if r.role == role]
        try:
            if law in {"auto", "compute", "both"}:
                compute_fit = fits.fit_compute_law([r.compute for r in table], [r.loss for r in table], **options)
                report["compute_law"] = compute_fit.to_dict()
                console.print(f"L(C) = a*C^b + c  ({compute_fit.n_points} runs, rmse of log loss "
                              f"{compute_fit.rmse_log:.4f})")
                for name in ("a", "b", "c"):
                    console.print(f"  {name} = {_ci(getattr(compute_fit, name))}")
                    rows.append(_row(f"L(C).{name}", getattr(compute_fit, name)))
                if target_compute is not None:
                    est = compute_fit.extrapolate(target_compute)
                    report["compute_law"]["extrapolation"] = {"compute": target_compute, **est.to_dict()}
                    console.print(f"  L({target_compute:.3g}) = {_ci(est)}")
                    rows.append(_row(f"L({target_compute:.3g})", est))
                if plot is not None:
                    from lmaudit.scaling.plot import plot_scaling

                    plot_scaling(plot, table, compute_fit, extend_to=target_compute)
                    console.print(f"plot: {plot}")
            params_fit = None
            if law in {"params", "both"} or (law == "auto" and _has_independent_n_d(table)):
                missing = [r.name for r in table if r.n_params is None or r.tokens is None]
                if missing:
                    raise DataError(f"L(N, D) needs n_params and tokens in every row; missing in: {', '.join(missing)}")
                params_fit = fits.fit_params_law([r.n_params for r in table], [r.tokens for r in table],
                                                 [r.loss for r in table], **options)
                report["params_law"] = params_fit.to_dict()
                console.print(f"L(N, D) = E + A/N^alpha + B/D^beta  ({params_fit.n_points} runs, Huber delta "
                              f"{params_fit.huber_delta:g})")
                for name in ("E", "A", "B", "alpha", "beta"):
                    console.print(f"  {name} = {_ci(getattr(params_fit, name))}")
                    rows.append(_row(f"L(N,D).{name}", getattr(params_fit, name)))
            if budget is not None:
                if params_fit is None:
                    raise ConfigError("--budget needs the L(N, D) fit: runs with independently varied N and D "
                                      "(use --law params)")
                optimum = params_fit.compute_optimal(budget)
                report["compute_optimal"] = optimum.to_dict()
                console.print(f"compute-optimal at C={budget:.3g}: N = {_ci(optimum.n_params)}, "
                              f"D = {_ci(optimum.tokens)}, loss = {_ci(optimum.loss)}")
        except DataError as exc:
            raise DataError(f"{runs}: {exc}") from exc
    if pass_rates is not None:
        compute, rates, problems = read_pass_rates(pass_rates)
        try:
            result = fits.fit_pass_rate_law(compute, rates, problems, buckets=buckets, **options)
        except DataError as exc:
            raise DataError(f"{pass_rates}: {exc}") from exc
        report["pass_rate_law"] = result.to_dict()
        console.print(f"-E[log pass_rate] = alpha*C^(-k)  ({len(result.overall.problems)} problems solved by every "
                      f"model; {len(result.dropped_problems)} dropped)")
        for group in (result.overall, *result.buckets):
            line = f"  {group.label}: alpha = {_ci(group.alpha)}, k = {_ci(group.k)}"
            rows += [_row("pass_rate.alpha", group.alpha, group.label), _row("pass_rate.k", group.k, group.label)]
            if target_compute is not None:
                est = group.extrapolate(target_compute)
                line += f", at C={target_compute:.3g}: {_ci(est)}"
            console.print(line)
        if output_dir is not None:
            from lmaudit.scaling.plot import plot_pass_rates

            figure = plot_pass_rates(output_dir / "pass-rates.png", result, extend_to=target_compute)
            console.print(f"plot: {figure}")
    if output_dir is not None:
        write_json_atomic(output_dir / "results.json", envelope("scaling-fit", rows, **report))
        console.print(f"results: {output_dir / 'results.json'}")


def _row(metric: str, estimate, group: str | None = None):
    from lmaudit.core.results import MetricRow

    return MetricRow(metric, estimate.value, ci95=(estimate.ci_low, estimate.ci_high), group=group)


def _has_independent_n_d(table) -> bool:
    from lmaudit.scaling.fit import separable

    if len(table) < 7 or any(r.n_params is None or r.tokens is None for r in table):
        return False
    return separable([r.n_params for r in table], [r.tokens for r in table])
