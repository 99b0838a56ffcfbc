"""`lmaudit redteam` and `lmaudit overrefusal`: safety evals from the command line.

The main CLI mounts `redteam` and `overrefusal` at top level; `python -m lmaudit.cli.safety` runs them too.
"""

from __future__ import annotations

import warnings
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
    PrivateCacheOpt,
    QuietOpt,
    SeedOpt,
    cli_command,
    console,
    errors,
    load_model_for_cli,
    new_app,
    output_dir as check_output_dir,
)

app = new_app("Safety evals: tense-reformulation red-teaming and over-refusal.")

JudgeModel = Annotated[Optional[str], typer.Option(help="model spec for the LLM judges (rating, safe_unsafe, "
                                                        "refusal, rubric)")]
MaxTokens = Annotated[int, typer.Option(help="tokens the target may generate per answer")]
JudgeMaxTokens = Annotated[int, typer.Option(help="tokens an LLM judge may generate")]
JudgeTemplate = Annotated[list[str], typer.Option(help="judge=FILE: your own prompt template for a judge "
                                                       "(placeholders {request} and {response}; repeatable)")]
RubricFile = Annotated[Optional[Path], typer.Option(help="TOML rubric for the rubric judge (see docs/safety.md)")]
Labels = Annotated[Optional[Path], typer.Option(help="CSV/JSONL with request,response,label: judge agreement "
                                                     "with these human labels")]


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    from lmaudit.core.errors import ConfigError

    out = {}
    for value in values:
        key, sep, path = value.partition("=")
        if not sep or not key.strip() or not path.strip():
            raise ConfigError(f"{flag} expects NAME=FILE, got {value!r}")
        out[key.strip()] = path.strip()
    return out


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _load_models(specs: dict[str, str | None], model_arg: list[str]) -> dict[str, Any]:
    """One loaded model per distinct spec, shared by the roles that name it; --model-arg applies to the target's."""
    loaded: dict[str, Any] = {}
    for spec in dict.fromkeys(s for s in specs.values() if s):
        loaded[spec] = load_model_for_cli(spec, model_arg if spec == specs["target"] else ())
    return {role: loaded[spec] for role, spec in specs.items() if spec}


def _ci(summary: dict[str, Any] | None) -> tuple[str, str, str]:
    if not summary or summary.get("n", 0) == 0:
        return "-", "-", "0"
    low, high = summary["ci95"]
    return f"{100 * summary['value']:.1f}%", f"[{100 * low:.1f}, {100 * high:.1f}]", str(summary["n"])


def _agreement_table(title: str, rows: dict[str, dict[str, Any]]):
    from rich.table import Table

    table = Table(title=title)
    for column in ("pair", "n", "accuracy", "precision", "recall", "Cohen's kappa", "left out"):
        table.add_column(column, justify="left" if column == "pair" else "right")
    for pair, stats in rows.items():
        cells = ("-" if stats[k] is None else f"{stats[k]:.3f}" for k in ("accuracy", "precision", "recall", "kappa"))
        table.add_row(pair, str(stats["n"]), *cells, str(stats.get("excluded", 0)))
    return table


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        errors.print(f"[yellow]warning:[/] {note}", highlight=False)


@app.command("redteam")
@cli_command
def redteam(
    model: ModelOpt = "smollm2",
    model_arg: ModelArgOpt = [],
    attack: Annotated[str, typer.Option(help="past, future or present (comma-separate several to compare them)")]
    = "past",
    attempts: Annotated[int, typer.Option(min=1, help="attempts per behaviour (a fresh rewrite and answer each)")] = 20,
    attacker: Annotated[Optional[str], typer.Option(help="model spec that rewrites requests (default: --model)")]
    = None,
    judges: Annotated[str, typer.Option(help="comma-separated judges, the first is primary: rules, rules_short, "
                                             "rating, safe_unsafe, rubric")] = "rules",
    judge_model: JudgeModel = None,
    dataset: Annotated[str, typer.Option(help="jbb, advbench, xstest-unsafe, or a CSV/JSONL with a goal column")]
    = "jbb",
    limit: LimitOpt = None,
    output_dir: OutputDirOpt = None,
    seed: SeedOpt = 0,
    max_tokens: MaxTokens = 150,
    target_temperature: Annotated[float, typer.Option(help="0 = greedy answers (as in the paper)")] = 0.0,
    attacker_max_tokens: Annotated[int, typer.Option(help="tokens the attacker may generate")] = 100,
    attack_template: Annotated[list[str], typer.Option(help="attack=FILE: your own few-shot template for past "
                                                            "or future (placeholder {request}; repeatable)")] = [],
    judge_max_tokens: JudgeMaxTokens = 32,
    judge_template: JudgeTemplate = [],
    rubric: RubricFile = None,
    labels: Labels = None,
    data_dir: DataDirOpt = None,
    cache: CacheOpt = None,
    private_cache: PrivateCacheOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Attack a model with past/future reformulations of harmful behaviours; writes per-attempt records,
    ASR overall and per category, and an ASR@k plot."""
    from rich.table import Table

    from lmaudit.core.errors import ConfigError
    from lmaudit.safety import (
        RedTeamConfig, SmallJudgeWarning, TargetSettings, load_prompts, make_attack, make_judges, run_redteam,
    )
    from lmaudit.safety.judges import require_judge_model, uses_model

    templates = _pairs(attack_template, "--attack-template")
    attack_names = _names(attack)
    unknown = sorted(set(templates) - set(attack_names))
    if unknown:
        raise ConfigError(f"--attack-template given for attack(s) not in use: {', '.join(unknown)}")
    attacks = [make_attack(name, template=templates.get(name), max_tokens=attacker_max_tokens)
               for name in attack_names]
    judge_list = make_judges(_names(judges), "jailbroken", templates=_pairs(judge_template, "--judge-template"),
                             rubric=rubric, max_tokens=judge_max_tokens)
    if judge_model and not uses_model(judge_list):
        raise ConfigError("--judge-model is only used by LLM judges (rating, safe_unsafe, rubric)")
    require_judge_model(judge_list, judge_model is not None)
    prompts = load_prompts(dataset, data_dir=data_dir)
    prompts.require(harmful=True)
    config = RedTeamConfig(attempts=attempts, target=TargetSettings(max_tokens, target_temperature), seed=seed,
                           limit=limit)
    needs_attacker = any(a.template is not None for a in attacks)
    specs = {"target": model, "attacker": (attacker or model) if needs_attacker else None,
             "judge": judge_model if uses_model(judge_list) else None}
    check_output_dir(output_dir)
    models = _load_models(specs, model_arg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallJudgeWarning)  # printed below from the results' notes
        result = run_redteam(models["target"], prompts, judge_list, attacks, output_dir,
                             attacker=models.get("attacker"), judge_model=models.get("judge"), config=config,
                             labels=labels, specs=specs, cache_path=cache, shared_cache=not private_cache,
                             progress=not quiet)
    results = result.results
    table = Table(title=f"attack success rate: {model} on {prompts.name} ({len(results['attacks'])} attack(s), "
                        f"up to {attempts} attempts, primary judge {results['primary_judge']})")
    for column in ("attack", "judge", "ASR (paper)", "95% CI", "ASR (any of N)", "95% CI ", "n", "parse failures"):
        table.add_column(column, justify="left" if column in {"attack", "judge"} else "right")
    for name, block in results["attacks"].items():
        metrics = (block["asr"] or {}).get("metrics", {})
        for judge in results["judges"]:
            paper, paper_ci, n = _ci(metrics.get(f"asr_{judge}"))
            anyn, any_ci, _ = _ci(metrics.get(f"asr_any_{judge}"))
            table.add_row(name, judge, paper, paper_ci, anyn, any_ci, n, str(block["parse_failures"][judge]))
    console.print(table)
    primary = results["primary_judge"]
    by_category = Table(title=f"ASR per category (paper aggregation, judge {primary})")
    by_category.add_column("category")
    for name in results["attacks"]:
        by_category.add_column(name, justify="right")
    categories = sorted({c for b in results["attacks"].values() if b["asr"] for c in b["asr"]["groups"]["category"]})
    for category in categories:
        cells = []
        for block in results["attacks"].values():
            group = (block["asr"] or {}).get("groups", {}).get("category", {}).get(category, {})
            value, ci, n = _ci(group.get(f"asr_{primary}"))
            cells.append(f"{value} {ci} n={n}")
        by_category.add_row(category, *cells)
    console.print(by_category)
    for name, block in results["attacks"].items():
        if block["judge_agreement"]:
            console.print(_agreement_table(f"judge agreement on every {name} attempt (first judge = reference)",
                                           block["judge_agreement"]))
    if "human_agreement" in results:
        human = results["human_agreement"]
        console.print(_agreement_table(f"judges vs human labels ({human['file']}; left out: a missing response "
                                       f"or an unreadable judge answer, {human['parse_failures']} unreadable)",
                                       human["judges"]))
    _print_notes(results["notes"])
    errors.print(f"run directory: {result.run_dir}  plot: {result.plot}  (model requests sent: "
                 f"{result.requests_sent}, cache hits: {result.cache_hits}, attempts run: {result.attempts_run}, "
                 f"attempts resumed: {result.attempts_resumed})", highlight=False)


@app.command("overrefusal")
@cli_command
def overrefusal(
    model: ModelOpt = "smollm2",
    model_arg: ModelArgOpt = [],
    dataset: Annotated[str, typer.Option(help="jbb-benign, xstest (its 250 safe prompts), or a CSV/JSONL with a "
                                              "goal column")] = "jbb-benign",
    judges: Annotated[str, typer.Option(help="comma-separated judges: rules, rules_short, refusal, rubric")]
    = "rules",
    judge_model: JudgeModel = None,
    limit: LimitOpt = None,
    output_dir: OutputDirOpt = None,
    seed: SeedOpt = 0,
    max_tokens: MaxTokens = 150,
    judge_max_tokens: JudgeMaxTokens = 32,
    judge_template: JudgeTemplate = [],
    rubric: RubricFile = None,
    labels: Labels = None,
    data_dir: DataDirOpt = None,
    cache: CacheOpt = None,
    private_cache: PrivateCacheOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Measure how often a model refuses requests it should answer; writes per-prompt records and the rate
    with a 95% CI, overall and per category."""
    from rich.table import Table

    from lmaudit.core.errors import ConfigError
    from lmaudit.safety import (
        OverRefusalConfig, SmallJudgeWarning, TargetSettings, load_prompts, make_judges, run_overrefusal,
    )
    from lmaudit.safety.judges import require_judge_model, uses_model

    judge_list = make_judges(_names(judges), "refused", templates=_pairs(judge_template, "--judge-template"),
                             rubric=rubric, max_tokens=judge_max_tokens)
    if judge_model and not uses_model(judge_list):
        raise ConfigError("--judge-model is only used by LLM judges (refusal, rubric)")
    require_judge_model(judge_list, judge_model is not None)
    prompts = load_prompts(dataset, data_dir=data_dir)
    prompts.require(harmful=False)
    config = OverRefusalConfig(target=TargetSettings(max_tokens, 0.0), seed=seed, limit=limit)
    specs = {"target": model, "judge": judge_model if uses_model(judge_list) else None}
    check_output_dir(output_dir)
    models = _load_models(specs, model_arg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallJudgeWarning)
        result = run_overrefusal(models["target"], prompts, judge_list, output_dir, judge_model=models.get("judge"),
                                 config=config, labels=labels, specs=specs, cache_path=cache,
                                 shared_cache=not private_cache, progress=not quiet)
    results = result.results
    summary = results["over_refusal"]
    table = Table(title=f"over-refusal: {model} on {prompts.name} ({results['prompts']} prompts)")
    for column in ("judge", "group", "refusal rate", "95% CI", "n", "parse failures"):
        table.add_column(column, justify="left" if column in {"judge", "group"} else "right")
    for judge in results["judges"]:
        value, ci, n = _ci(summary["metrics"][f"refused_{judge}"])
        table.add_row(judge, "all", value, ci, n, str(results["parse_failures"][judge]))
    first = results["judges"][0]
    for category, metrics in summary["groups"].get("category", {}).items():
        value, ci, n = _ci(metrics[f"refused_{first}"])
        table.add_row(first, category, value, ci, n, "")
    console.print(table)
    if results["judge_agreement"]:
        console.print(_agreement_table("judge agreement (first judge = reference)", results["judge_agreement"]))
    if "human_agreement" in results:
        human = results["human_agreement"]
        console.print(_agreement_table(f"judges vs human labels ({human['file']}; left out: a missing response "
                                       f"or an unreadable judge answer, {human['parse_failures']} unreadable)",
                                       human["judges"]))
    _print_notes(results["notes"])
    errors.print(f"run directory: {result.run_dir}  (model requests sent: {result.requests_sent}, cache hits: "
                 f"{result.cache_hits}, prompts run: {result.prompts_run}, resumed: {result.prompts_resumed})",
                 highlight=False)


if __name__ == "__main__":  # `python -m lmaudit.cli.safety ...`, until the main CLI mounts the commands
    app()
