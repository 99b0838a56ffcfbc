"""`lmaudit report` (one HTML file over run directories) and `lmaudit map` (knowledge maps). Thin: parse,
call lmaudit.report / lmaudit.maps, print what was written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from lmaudit.cli.options import ModelArgOpt, OptionalModelOpt, QuietOpt, cli_command, console, errors

RunDirsArg = Annotated[list[Path], typer.Argument(help="run directories (any kind lmaudit writes)")]
HierarchyOpt = Annotated[str, typer.Option("--hierarchy", help="auto (a built-in one where it applies), mmlu, "
                                                               "truthfulqa, jbb, a .toml/.json file, model "
                                                               "(built by --model), or none")]
MetricOpt = Annotated[Optional[str], typer.Option("--metric", help="the score to map (default: the task's first)")]
MinNOpt = Annotated[int, typer.Option("--min-n", min=1, help="nodes with fewer samples are marked low-n")]


def _print_report(report) -> None:  # type: ignore[no-untyped-def]
    for label, counts in report.checks.items():
        parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        console.print(f"{label}: metric rows vs results.json: {parts}", highlight=False)
    for note in report.notes:
        errors.print(f"note: {note}", highlight=False)
    for comparison in report.comparisons:
        console.print(f"A/B {comparison.b} vs {comparison.a}: {comparison.shared} shared samples, "
                      f"{len(comparison.flips)} flipped", highlight=False)


@cli_command
def report(
    run_dirs: RunDirsArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="the HTML file to write")] = Path("report.html"),
    hierarchy: HierarchyOpt = "auto",
    metric: MetricOpt = None,
    min_n: MinNOpt = 30,
    contamination: Annotated[Optional[Path], typer.Option(
        "--contamination", help="flags file (or run directory) from `lmaudit contamination`: marks samples "
                                "for the filter")] = None,
    title: Annotated[Optional[str], typer.Option("--title", help="the report's title")] = None,
    view: Annotated[str, typer.Option("--view", help="the view it opens on: summary, samples, ab, map")] = "summary",
) -> None:
    """One self-contained HTML file: metrics with CIs, figures, a sample browser, A/B and knowledge maps."""
    from lmaudit.report import build_report

    built = build_report(run_dirs, output, hierarchy=hierarchy, metric=metric, min_n=min_n,
                         contamination=contamination, title=title, view=view)
    _print_report(built)
    console.print(f"wrote {built.path} ({built.bytes / 1e6:.2f} MB, {built.samples} samples, "
                  f"{len(built.maps)} map(s)) in {built.seconds:.1f} s", highlight=False)


@cli_command
def map_command(
    run_dirs: RunDirsArg,
    output_dir: Annotated[Path, typer.Option("--output-dir", help="folder for map.svg, map.png, map_nodes.csv "
                                                                  "and map.html")] = Path("map"),
    hierarchy: HierarchyOpt = "auto",
    metric: MetricOpt = None,
    min_n: MinNOpt = 30,
    difference: Annotated[bool, typer.Option("--difference", help="with several runs: colour by the difference "
                                                                  "from the first run only")] = False,
    key: Annotated[Optional[str], typer.Option("--key", help="with --hierarchy model: the metadata key whose "
                                                             "values the model groups (default: the first "
                                                             "group key)")] = None,
    model: OptionalModelOpt = None,
    model_arg: ModelArgOpt = [],
    quiet: QuietOpt = False,
) -> None:
    """Accuracy over a knowledge hierarchy (LLMMaps): question counts, Wilson CIs, low-n marks, runs side by side."""
    from lmaudit.cli.options import load_model_for_cli, output_dir as checked_dir
    from lmaudit.core.errors import ConfigError
    from lmaudit.core.output import write_table
    from lmaudit.maps import ROW_COLUMNS, induce_hierarchy, save_png, save_svg
    from lmaudit.report import build_report, open_run

    folder = checked_dir(output_dir)
    assert folder is not None
    chosen: object = hierarchy
    if hierarchy == "model":
        if model is None:
            raise ConfigError("--hierarchy model needs --model SPEC (the model that proposes the areas)")
        first = open_run(run_dirs[0])
        tasks = (first.results.get("tasks") or {})
        group_keys = [k for t in tasks.values() for k in t.get("group_by", [])]
        wanted = key or (group_keys[0] if group_keys else None)
        if wanted is None:
            raise ConfigError(f"{run_dirs[0]} has no group key to build a hierarchy over; give --key")
        values = {str(r.metadata[wanted]) for r in first.records if wanted in r.metadata}
        if not values:
            raise ConfigError(f"no record of {run_dirs[0]} has the metadata key '{wanted}'")
        induced = induce_hierarchy(sorted(values), wanted, load_model_for_cli(model, model_arg), folder / "hierarchy",
                                   spec=model, progress=not quiet)
        errors.print(f"hierarchy proposed by {model} ({induced.requests_sent} model requests): {induced.file}; "
                     f"review or edit it, then pass --hierarchy {induced.file}", highlight=False)
        chosen = induced.hierarchy
    built = build_report(run_dirs, folder / "map.html", hierarchy=chosen, metric=metric, min_n=min_n,  # type: ignore[arg-type]
                         view="map", flat_fallback=True, difference_only=difference)
    if not built.maps:
        raise ConfigError("no map: the runs have no group key and score to map (try --hierarchy FILE --metric M)")
    _print_report(built)
    rows = []
    for index, (kmap, plan) in enumerate(zip(built.maps, built.layouts)):
        stem = "map" if index == 0 else f"map_{index + 1}"
        written = [save_svg(plan, folder / f"{stem}.svg"), save_png(plan, folder / f"{stem}.png")]
        rows += [{**row, "map": stem} for row in kmap.rows()]
        console.print(f"{kmap.hierarchy.name}, {kmap.metric}: {len(kmap.nodes)} nodes, "
                      f"{sum(1 for n in kmap.nodes if n.stats[0].low_n)} low-n; "
                      + ", ".join(str(p) for p in written), highlight=False)
    write_table(rows, folder / "map_nodes.csv", ["map", *ROW_COLUMNS])
    console.print(f"wrote {folder / 'map_nodes.csv'} and {built.path} (the interactive map)", highlight=False)


def envelope_table(summary, group: str | None = None):  # type: ignore[no-untyped-def]
    """Any run's results.json metric rows as a table: overall rows, plus one grouping key (the coarsest one
    unless `group` names it)."""
    from rich.table import Table

    from lmaudit.core.errors import ConfigError

    keys: dict[str, set[str]] = {}
    for row in summary.rows:
        if row.group:
            name, _, value = row.group.partition("=")
            keys.setdefault(name, set()).add(value)
    if group is not None and group not in keys:
        raise ConfigError(f"{summary.path} has no group '{group}'; groups: {', '.join(sorted(keys)) or 'none'}")
    chosen = group or (min(keys, key=lambda k: len(keys[k])) if keys else None)
    table = Table(title=f"lmaudit {summary.kind} results: {summary.label}")
    for column in ("task", "group", "metric", "value", "± stderr", "95% CI", "n"):
        table.add_column(column, justify="right" if column in {"value", "± stderr", "n"} else "left")

    def number(value, digits=4):  # type: ignore[no-untyped-def]
        return "–" if value is None else f"{value:.{digits}f}"

    for row in summary.rows:
        if row.group and not row.group.startswith(f"{chosen}="):
            continue
        low, high = row.ci95 if row.ci95 else (None, None)
        table.add_row(row.task or "", row.group or "all", row.metric, number(row.value), number(row.stderr),
                      f"[{number(low, 3)}, {number(high, 3)}]", "" if row.n is None else str(row.n))
    return table
