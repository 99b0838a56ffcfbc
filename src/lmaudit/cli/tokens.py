"""`lmaudit tokens ...`: tokenization premiums across languages, their cost, and what they do to accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from lmaudit.cli.options import (DataDirOpt, ModelArgOpt, OutputDirOpt, QuietOpt, SeedOpt, cli_command, console,
                                 errors, load_model_for_cli, new_app)
from lmaudit.cli.options import output_dir as checked_dir

app = new_app("Tokenization cost across languages: premiums (Petrov et al.), API cost and context capacity "
              "(Ahia et al.), accuracy against premium, loss per byte.")

TokenizersOpt = Annotated[str, typer.Option("--tokenizers", help="comma-separated tokenizer specs: tiktoken:<name> "
                                            "(or the bare name), hf:<tokenizer.json|folder|.model>, model:<spec>, "
                                            "openai:<model>@<url>")]
CorpusOpt = Annotated[str, typer.Option("--corpus", help="flores200, ntrex128, a folder of line-aligned files, or "
                                        "a JSONL/CSV/Parquet file with language and text fields")]
LangsOpt = Annotated[Optional[str], typer.Option("--langs", help="comma-separated languages (FLORES codes such as "
                                                 "hin_Deva, ISO codes, locales); default all")]
ReferenceOpt = Annotated[str, typer.Option("--reference", help="the language premiums are relative to")]
MaxSentencesOpt = Annotated[Optional[int], typer.Option("--max-sentences", min=1, help="use the first N sentences "
                                                        "of every language (default all)")]
ContextOpt = Annotated[int, typer.Option("--context-window", min=1, help="tokens of context for the capacity "
                                         "column (sentences that fit)")]
TextFieldOpt = Annotated[str, typer.Option("--text-field", help="text field of a table corpus")]
LanguageFieldOpt = Annotated[str, typer.Option("--language-field", help="language field of a table corpus")]


def _list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _corpus(spec: str, data_dir: Path | None, langs: str | None, reference: str, max_sentences: int | None,
            text_field: str = "text", language_field: str = "language") -> Any:
    from lmaudit.tokens import load_corpus

    corpus = load_corpus(spec, data_dir=data_dir, text_field=text_field, language_field=language_field)
    return corpus.head(max_sentences).select(_list(langs) or None, reference)


def _tokenizers(specs: list[str]) -> dict[str, Any]:
    from lmaudit.core.errors import ConfigError
    from lmaudit.tokens import load_tokenizer

    if not specs:
        raise ConfigError("no tokenizer given: --tokenizers cl100k_base,hf:<tokenizer.json>,...")
    return {spec: load_tokenizer(spec) for spec in specs}


def _print_premiums(report: Any, limit: int = 12) -> None:
    from rich.table import Table

    for name, values in report.summaries.items():
        rows = sorted((r for r in report.rows if r.tokenizer == name), key=lambda r: r.premium)
        table = Table(title=f"{name}: median premium {values['median_premium']:.2f}, max "
                            f"{values['max_premium']:.2f} ({values['max_premium_language']}), at parity "
                            f"{100 * values['share_at_parity']:.0f}%, flagged {len(values['flagged'])}")
        for column in ("language", "name", "tokens", "premium", "95% CI", "chars/token", "unknown"):
            table.add_column(column, justify="left" if column in {"language", "name"} else "right")
        shown = rows if len(rows) <= limit else rows[: limit // 2] + rows[-(limit // 2):]
        for r in shown:
            table.add_row(r.language, r.name, str(r.tokens), f"{r.premium:.2f}",
                          f"[{r.premium_ci_low:.2f}, {r.premium_ci_high:.2f}]", f"{r.chars_per_token:.2f}",
                          f"{100 * r.unknown_share:.1f}%" + (" flagged" if r.flagged else ""))
        console.print(table)
    for name, check in report.results.get("published_check", {}).items():
        console.print(f"{name}: {check['equal']}/{check['languages']} counts equal Petrov et al.'s "
                      f"'{check['column']}' column", highlight=False)


@app.command()
@cli_command
def premium(
    tokenizers: TokenizersOpt = "cl100k_base",
    corpus: CorpusOpt = "flores200",
    langs: LangsOpt = None,
    reference: ReferenceOpt = "eng_Latn",
    max_sentences: MaxSentencesOpt = None,
    context_window: ContextOpt = 8192,
    prices: Annotated[Optional[Path], typer.Option("--prices", help="price table (TOML) to add a cost table")] = None,
    text_field: TextFieldOpt = "text",
    language_field: LanguageFieldOpt = "language",
    output_dir: OutputDirOpt = None,
    seed: SeedOpt = 0,
    data_dir: DataDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Tokens, premium (95% CI), parity and unknown share of every language under each tokenizer."""
    from lmaudit.tokens import Settings, measure_premiums, read_prices

    folder = checked_dir(output_dir)
    table = read_prices(prices) if prices is not None else None
    chosen = _corpus(corpus, data_dir, langs, reference, max_sentences, text_field, language_field)
    loaded = _tokenizers(_list(tokenizers))
    report = measure_premiums(loaded, chosen, Settings(reference=reference, seed=seed, context_window=context_window),
                              output_dir=folder, prices=table, progress=not quiet)
    _print_premiums(report)
    errors.print(f"run directory: {report.run_dir}  (tokenizers counted now: {len(report.counted)}, "
                 f"resumed: {len(loaded) - len(report.counted)})", highlight=False)


@app.command()
@cli_command
def cost(
    prices: Annotated[Optional[Path], typer.Option("--prices", help="price table (TOML); default the shipped, dated "
                                                   "example")] = None,
    models: Annotated[Optional[str], typer.Option("--models", help="comma-separated models of the table "
                                                  "(default all)")] = None,
    input_tokens: Annotated[int, typer.Option("--input-tokens", min=0, help="English input tokens of the "
                                              "workload")] = 1_000_000,
    output_tokens: Annotated[int, typer.Option("--output-tokens", min=0, help="English output tokens of the "
                                               "workload")] = 200_000,
    example_tokens: Annotated[int, typer.Option("--example-tokens", min=1, help="English tokens of one few-shot "
                                                "example, for the examples-in-context column")] = 200,
    corpus: CorpusOpt = "flores200",
    langs: LangsOpt = None,
    reference: ReferenceOpt = "eng_Latn",
    max_sentences: MaxSentencesOpt = None,
    output_dir: OutputDirOpt = None,
    seed: SeedOpt = 0,
    data_dir: DataDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """The cost per language of a workload defined in English, and the few-shot examples that fit its context."""
    from rich.table import Table

    from lmaudit.tokens import Settings, Workload, measure_premiums, read_prices
    from lmaudit.tokens.cost import choose

    folder = checked_dir(output_dir)
    table = choose(read_prices(prices), _list(models) or None)
    chosen = _corpus(corpus, data_dir, langs, reference, max_sentences)
    loaded = _tokenizers(list(dict.fromkeys(p.tokenizer for p in table)))
    workload = Workload(input_tokens, output_tokens, example_tokens)
    report = measure_premiums(loaded, chosen, Settings(reference=reference, seed=seed), output_dir=folder,
                              prices=table, workload=workload, progress=not quiet)
    for price in table:
        rows = sorted((c for c in report.cost if c.model == price.model), key=lambda c: c.cost_usd)
        out = Table(title=f"{price.model} ({price.tokenizer}; ${price.input_per_million}/M in, "
                          f"${price.output_per_million}/M out, {price.date}): {input_tokens:,} + {output_tokens:,} "
                          f"English tokens")
        for column in ("language", "name", "premium", "cost $", "95% CI", "examples in context"):
            out.add_column(column, justify="left" if column in {"language", "name"} else "right")
        shown = rows if len(rows) <= 12 else rows[:6] + rows[-6:]
        for c in shown:
            out.add_row(c.language, c.name, f"{c.premium:.2f}", f"{c.cost_usd:.2f}",
                        f"[{c.cost_ci_low:.2f}, {c.cost_ci_high:.2f}]", str(c.examples_in_context or "-"))
        console.print(out)
    errors.print(f"run directory: {report.run_dir}", highlight=False)


@app.command("vs-accuracy")
@cli_command
def vs_accuracy(
    scores: Annotated[str, typer.Option("--scores", help="gpt4-mmlu (GPT-4 report, Figure 5), an lmaudit run "
                                        "directory grouped by language, or a CSV (language, accuracy)")] = "gpt4-mmlu",
    metric: Annotated[str, typer.Option("--metric", help="the metric to read from a run directory")] = "acc",
    group_key: Annotated[str, typer.Option("--group-key", help="the run's group key holding languages")] = "language",
    tokenizer: Annotated[str, typer.Option("--tokenizer", help="tokenizer whose premiums are related")] = "cl100k_base",
    premiums_from: Annotated[Optional[Path], typer.Option("--premiums", help="read premiums from a `tokens "
                                                          "premium` run directory instead of counting")] = None,
    corpus: CorpusOpt = "flores200",
    reference: ReferenceOpt = "eng_Latn",
    output_dir: OutputDirOpt = None,
    seed: SeedOpt = 0,
    data_dir: DataDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Spearman and Pearson of accuracy on log2 premium, slope per doubling, bootstrap CIs, and a scatter plot."""
    from lmaudit.tokens.versus import relate

    folder = checked_dir(output_dir)
    result, run_dir = relate(scores, tokenizer=tokenizer, premiums_run=premiums_from, corpus=corpus,
                             reference=reference, metric=metric, group_key=group_key, data_dir=data_dir,
                             output_dir=folder, seed=seed, progress=not quiet)
    console.print(f"{result.n} languages: Spearman {result.spearman:.3f} [{result.spearman_ci[0]:.3f}, "
                  f"{result.spearman_ci[1]:.3f}], Pearson {result.pearson:.3f} [{result.pearson_ci[0]:.3f}, "
                  f"{result.pearson_ci[1]:.3f}], slope {result.slope:+.2f} points per doubling "
                  f"[{result.slope_ci[0]:+.2f}, {result.slope_ci[1]:+.2f}]", highlight=False)
    if result.unmatched:
        errors.print(f"no premium for: {', '.join(result.unmatched)}", highlight=False)
    errors.print(f"run directory: {run_dir}", highlight=False)


@app.command()
@cli_command
def loss(
    model: Annotated[str, typer.Option("--model", help="a local model spec: smollm2, hf:<folder>, gguf:<file>")] = "smollm2",
    model_arg: ModelArgOpt = [],
    corpus: CorpusOpt = "flores200",
    langs: LangsOpt = None,
    reference: ReferenceOpt = "eng_Latn",
    max_sentences: Annotated[int, typer.Option("--max-sentences", min=1, help="sentences per language")] = 50,
    output_dir: OutputDirOpt = None,
    seed: SeedOpt = 0,
    data_dir: DataDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """A local model's loss per byte on the parallel corpus, per language, next to its own tokenizer's premium."""
    from rich.table import Table

    from lmaudit.tokens import loss_per_byte

    folder = checked_dir(output_dir)
    chosen = _corpus(corpus, data_dir, langs, reference, max_sentences)
    loaded = load_model_for_cli(model, model_arg)
    report = loss_per_byte(loaded, chosen, reference=reference, model_spec=model, output_dir=folder, seed=seed,
                           progress=not quiet)
    table = Table(title=f"{model}: loss per byte on {chosen.name}, {max_sentences} sentences per language")
    for column in ("language", "name", "bits/byte", "95% CI", "bits/token", "premium"):
        table.add_column(column, justify="left" if column in {"language", "name"} else "right")
    for r in sorted(report.rows, key=lambda r: r.bits_per_byte):
        table.add_row(r.language, r.name, f"{r.bits_per_byte:.3f}", f"[{r.bits_per_byte_ci_low:.3f}, "
                      f"{r.bits_per_byte_ci_high:.3f}]", f"{r.bits_per_token:.3f}", f"{r.premium:.2f}")
    console.print(table)
    errors.print(f"run directory: {report.run_dir}  (scoring took {report.seconds:.1f} s)", highlight=False)
