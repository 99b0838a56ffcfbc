"""`lmaudit llmuse ...`: how much of a corpus was written or rewritten by an LLM (distributional estimates)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from lmaudit.cli.options import (
    CacheOpt,
    ModelArgOpt,
    ModelOpt,
    OutputDirOpt,
    PrivateCacheOpt,
    QuietOpt,
    SeedOpt,
    cli_command,
    console,
    errors,
    existing_path,
    load_model_for_cli,
    new_app,
    output_dir,
)

app = new_app("Share of LLM-modified text in a corpus: mixture MLE over word occurrences (Liang et al.) and "
              "excess vocabulary (Kobak et al.).")

TextColumn = Annotated[str, typer.Option("--text-column", help="column holding the text")]
IdColumn = Annotated[Optional[str], typer.Option("--id-column", help="column holding a document id (default: "
                                                                      "the row number)")]
Vocabulary = Annotated[str, typer.Option("--vocabulary", help="words the MLE uses: all, adjectives, adverbs, verbs")]
MinHuman = Annotated[int, typer.Option("--min-human", min=1, help="a word must occur in this many human "
                                                                  "reference sentences")]
MinAi = Annotated[int, typer.Option("--min-ai", min=1, help="... and in this many AI reference sentences")]
Resamples = Annotated[int, typer.Option("--resamples", min=20, help="bootstrap resamples")]
Paired = Annotated[bool, typer.Option("--paired/--all-human", help="P from the originals of the rewritten "
                                                                   "paragraphs (topics cancel), or from all "
                                                                   "human reference text")]


@app.command("build-reference")
@cli_command
def build_reference_command(
    human: Annotated[Path, typer.Option("--human", help="human text written before LLMs: a table file (.csv, "
                                                        ".jsonl, .parquet, ...)")],
    text_column: TextColumn = "text",
    id_column: IdColumn = None,
    model: ModelOpt = "smollm2",
    model_arg: ModelArgOpt = [],
    heldout_fraction: Annotated[float, typer.Option(help="share of the paragraphs held out for validation")] = 0.3,
    rewrite: Annotated[int, typer.Option("--rewrite", min=1, help="reference paragraphs rewritten by the model "
                                                                   "(the AI corpus Q)")] = 75,
    rewrite_heldout: Annotated[int, typer.Option(min=0, help="held-out paragraphs rewritten (AI side of "
                                                              "`validate`)")] = 25,
    prompts: Annotated[Optional[Path], typer.Option(help="TOML/JSON file with outline, expand (and system) "
                                                         "templates")] = None,
    temperature: Annotated[float, typer.Option(min=0.0, help="sampling temperature (0: greedy)")] = 0.0,
    outline_tokens: Annotated[int, typer.Option(help="token limit of the outline")] = 64,
    paragraph_tokens: Annotated[int, typer.Option(help="token limit of the rewritten paragraph")] = 160,
    seed: SeedOpt = 0,
    output: OutputDirOpt = None,
    cache: CacheOpt = None,
    private_cache: PrivateCacheOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Rewrite held-out human paragraphs (outline, then paragraph) and write reference.jsonl.

    \b
    lmaudit llmuse build-reference --human old_abstracts.csv --text-column summaries --rewrite 150
    """
    from lmaudit.llmuse.building import run_build_reference
    from lmaudit.llmuse.reference import SplitPlan, read_documents
    from lmaudit.llmuse.rewrite import Prompts, RewriteSettings

    existing_path(human, "human corpus")
    chosen = Prompts.from_file(prompts) if prompts else Prompts()
    settings = RewriteSettings(temperature, outline_tokens, paragraph_tokens, seed)
    settings.check()
    plan = SplitPlan(heldout_fraction, rewrite, rewrite_heldout, seed)
    plan.check(len(read_documents(human, text_column, id_column)))
    target = output_dir(output)
    loaded = load_model_for_cli(model, model_arg)
    run = run_build_reference(loaded, human, text_column=text_column, id_column=id_column, output_dir=target,
                              plan=plan, prompts=chosen, settings=settings, model_spec=model, cache_path=cache,
                              shared_cache=not private_cache, progress=not quiet)
    counts = run.reference.counts()
    console.print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()), highlight=False)
    errors.print(f"run directory: {run.run_dir}  (model requests sent: {run.requests_sent})", highlight=False)


# -- estimate -------------------------------------------------------------------------------------------------
ReferenceOpt = Annotated[Path, typer.Option("--reference", help="a build-reference run directory or its "
                                                                "reference.jsonl")]
GroupColumn = Annotated[Optional[str], typer.Option("--group-column", help="column to estimate per group "
                                                                          "(a list column: its first element)")]
GroupPrefix = Annotated[bool, typer.Option("--group-prefix", help="group by the part before the first dot "
                                                                  "(cs.CL -> cs)")]
Groups = Annotated[Optional[str], typer.Option("--groups", help="comma-separated groups to keep (each must "
                                                                "have documents)")]
DateColumn = Annotated[Optional[str], typer.Option("--date-column", help="column with ISO dates, to estimate "
                                                                        "per period")]
Period = Annotated[str, typer.Option("--period", help="day, month, quarter or year")]
Executor = Annotated[str, typer.Option("--executor", help="corpus counting: local (process pool) or ray")]
Workers = Annotated[int, typer.Option("--workers", min=1, help="corpus counting: processes or Ray tasks at once")]
TextField = Annotated[str, typer.Option("--text-field", help="--corpus: JSONL/Parquet field with the text")]
GroupField = Annotated[Optional[str], typer.Option("--group-field", help="--corpus: field with the group")]


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


@app.command("estimate")
@cli_command
def estimate_command(
    reference: ReferenceOpt,
    target: Annotated[Optional[Path], typer.Option("--target", help="target documents: a table file")] = None,
    corpus: Annotated[list[str], typer.Option("--corpus", help="or a corpus at scale: JSONL/text/Parquet files, "
                                                               "globs or folders (repeatable)")] = [],
    text_column: TextColumn = "text",
    group_column: GroupColumn = None,
    group_prefix: GroupPrefix = False,
    groups: Groups = None,
    date_column: DateColumn = None,
    period: Period = "month",
    text_field: TextField = "text",
    group_field: GroupField = None,
    executor: Executor = "local",
    workers: Workers = 1,
    vocabulary: Vocabulary = "all",
    min_human: MinHuman = 5,
    min_ai: MinAi = 3,
    resamples: Resamples = 1000,
    min_sentences: Annotated[int, typer.Option(min=1, help="strata with fewer sentences are skipped")] = 20,
    paired: Paired = True,
    seed: SeedOpt = 0,
    output: OutputDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Share of LLM-modified sentences in a target, overall and per group / period, with honest intervals.

    \b
    lmaudit llmuse estimate --reference runs/ref --target new.csv --text-column abstract --group-column tags
    lmaudit llmuse estimate --reference runs/ref --corpus 'crawl/*.jsonl.gz' --group-field venue --executor ray
    """
    from lmaudit.core.errors import ConfigError
    from lmaudit.core.hashing import file_digest
    from lmaudit.llmuse.corpus import read_documents
    from lmaudit.llmuse.counting import target_sentences
    from lmaudit.llmuse.pos import check_mode
    from lmaudit.llmuse.reference import load_reference
    from lmaudit.llmuse.runs import (
        EstimateSettings,
        reference_corpora,
        run_estimate,
        strata_of_documents,
        strata_of_groups,
    )

    if (target is None) == (not corpus):
        raise ConfigError("give the target as --target FILE or as --corpus PATTERN (one of them)")
    check_mode(vocabulary)
    settings = EstimateSettings(vocabulary, min_human, min_ai, resamples, seed, min_sentences, paired)
    folder = output_dir(output)
    ref = load_reference(reference)
    wanted = _split(groups)
    docs = None
    if target is not None:
        existing_path(target, "target")
        docs = read_documents(target, text_column=text_column, group_column=group_column, date_column=date_column,
                              period=period, group_prefix=group_prefix, groups=wanted or None)
    refs = reference_corpora(ref, settings, progress=not quiet)
    if docs is not None:
        strata = strata_of_documents(docs, refs, vocabulary, progress=not quiet)
        identity = {"target": file_digest(target), "columns": [text_column, group_column, date_column, period],
                    "group_prefix": group_prefix, "groups": wanted}
    else:
        matrices, documents = target_sentences(corpus, refs.candidates, mode=vocabulary, text_field=text_field,
                                               group_field=group_field, group_prefix=group_prefix,
                                               executor=executor, workers=workers, progress=not quiet)
        strata = strata_of_groups(matrices, documents)
        identity = {"corpus": list(corpus), "fields": [text_field, group_field], "group_prefix": group_prefix}
    run = run_estimate(refs, strata, settings, output_dir=folder, requested=wanted,
                       identity={**identity, "reference": file_digest(ref.path)}, reference_source=ref.path)
    _estimate_table(run.rows, refs)
    for skip in run.skipped:
        errors.print(f"skipped {skip['group']}/{skip['period']}: {skip['n_sentences']} sentences", highlight=False)
    errors.print(f"run directory: {run.run_dir}  (vocabulary.csv, estimates.csv, estimates.png)", highlight=False)


def _estimate_table(rows: list[dict], refs) -> None:
    from rich.table import Table

    table = Table(title=f"LLM-modified share ({refs.human.n} human + {refs.ai.n} AI reference sentences, "
                        f"{len(refs.table.words)} words)")
    for column in ("group", "period", "share [95% CI]", "MLE", "anchor midpoint [target-only CI]",
                   "profile CI", "refs' share of var", "sentences"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["group"], r["period"], f"{100 * r['alpha']:.2f}% [{100 * r['ci_low']:.2f}, "
                      f"{100 * r['ci_high']:.2f}]", f"{100 * r['mle']:.2f}%",
                      f"{100 * r['anchor']:.2f}% [{100 * r['target_only_low']:.2f}, {100 * r['target_only_high']:.2f}]",
                      f"[{100 * r['profile_low']:.2f}, {100 * r['profile_high']:.2f}]",
                      f"{100 * r['reference_share']:.0f}%", str(r["n_sentences"]))
    console.print(table)


# -- validate -------------------------------------------------------------------------------------------------
@app.command("validate")
@cli_command
def validate_command(
    reference: Annotated[Optional[Path], typer.Option("--reference", help="a build-reference run directory: mix "
                                                                         "its held-out human and AI text")] = None,
    simulate: Annotated[bool, typer.Option("--simulate", help="instead, draw Bernoulli corpora from known P, Q")
                        ] = False,
    shares: Annotated[str, typer.Option(help="comma-separated true shares")] = "0,0.05,0.1,0.15,0.2,0.25",
    mixtures: Annotated[int, typer.Option(min=2, help="seeded mixtures (or simulations) per share")] = 50,
    resamples: Resamples = 200,
    target_size: Annotated[Optional[int], typer.Option(help="sentences per mixture (default: as many as the "
                                                            "held-out text allows)")] = None,
    vocabulary: Vocabulary = "all",
    min_human: MinHuman = 5,
    min_ai: MinAi = 3,
    paired: Paired = True,
    words: Annotated[int, typer.Option(min=10, help="--simulate: vocabulary size")] = 2000,
    shift: Annotated[float, typer.Option(help="--simulate: sd of the AI shift in each word's log-odds")] = 0.35,
    n_human: Annotated[int, typer.Option(help="--simulate: human reference sentences")] = 10_000,
    n_ai: Annotated[int, typer.Option(help="--simulate: AI reference sentences")] = 10_000,
    n_target: Annotated[int, typer.Option(help="--simulate: target sentences")] = 5_000,
    seed: SeedOpt = 0,
    output: OutputDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Estimate mixtures of known share: error per share, bias at zero, interval coverage, beside the anchor's.

    \b
    lmaudit llmuse validate --reference runs/ref --mixtures 50
    lmaudit llmuse validate --simulate --mixtures 200 --resamples 400
    """
    from lmaudit.core.errors import ConfigError
    from lmaudit.llmuse.runs import run_validation
    from lmaudit.llmuse.validation import SimulationSizes, StudySettings, headline

    try:
        chosen = tuple(float(s) for s in _split(shares))
    except ValueError:
        raise ConfigError(f"--shares expects comma-separated numbers, got {shares!r}") from None
    settings = StudySettings(chosen, mixtures, resamples, seed)
    settings.check()
    if (reference is None) == (not simulate):
        raise ConfigError("give --reference RUN (held-out text) or --simulate (one of them)")
    folder = output_dir(output)
    if simulate:
        from lmaudit.llmuse.simulate import word_model
        from lmaudit.llmuse.validation import validate_simulated

        sizes = SimulationSizes(n_human, n_ai, n_target, min_human, min_ai)
        model = word_model(words, seed=seed, shift=shift)
        identity = {"simulate": {"words": words, "shift": shift, **vars(sizes)}, "study": vars(settings)}

        def rows_of():
            return validate_simulated(model, sizes, settings, progress=not quiet)

        details = {"simulation": identity["simulate"]}
    else:
        from lmaudit.core.hashing import file_digest
        from lmaudit.llmuse.reference import load_reference
        from lmaudit.llmuse.runs import EstimateSettings, reference_corpora, reference_details
        from lmaudit.llmuse.validation import validate_heldout
        from lmaudit.llmuse.vocabulary import sentence_sets

        ref = load_reference(reference)
        estimate_settings = EstimateSettings(vocabulary, min_human, min_ai, resamples, seed, paired=paired)
        refs = reference_corpora(ref, estimate_settings, progress=not quiet)
        held = [refs.matrix(sentence_sets(ref.sentences(source, "heldout"), vocabulary))
                for source in ("human", "ai")]
        identity = {"reference": file_digest(ref.path), "vocabulary": vocabulary, "min": [min_human, min_ai],
                    "paired": paired,
                    "target_size": target_size, "study": vars(settings)}

        def rows_of():
            return validate_heldout(refs, held[0], held[1], settings, target_size=target_size, progress=not quiet)

        details = {"references": reference_details(refs, estimate_settings, ref.path),
                   "heldout_sentences": {"human": held[0].n, "ai": held[1].n}}
    run_dir, rows, _ = run_validation(rows_of, output_dir=folder, identity=identity, details=details)
    _validation_table(rows)
    top = headline(rows)
    console.print(f"max |error| {100 * top['max_abs_error']:.2f} points "
                  f"(anchor {100 * top['anchor_max_abs_error']:.2f}); "
                  f"coverage {100 * top['min_coverage']:.0f}-{100 * top['max_coverage']:.0f}% (anchor "
                  f"{100 * top['anchor_min_coverage']:.0f}-{100 * top['anchor_max_coverage']:.0f}%)", highlight=False)
    errors.print(f"run directory: {run_dir}  (validation.csv, validation.png)", highlight=False)


def _validation_table(rows: list[dict]) -> None:
    from rich.table import Table

    table = Table(title="validation at known shares (errors in points; coverage of the 95% intervals)")
    for column in ("share", "mixtures", "sentences", "error", "sd", "coverage", "anchor error", "anchor coverage",
                   "refs' share of var"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(f"{r['share']:g}", str(r["n_mixtures"]), str(r["n_target"]), f"{100 * r['error']:+.2f}",
                      f"{100 * r['sd_alpha']:.2f}", f"{100 * r['coverage']:.0f}%", f"{100 * r['anchor_error']:+.2f}",
                      f"{100 * r['anchor_coverage']:.0f}%", f"{100 * r['mean_reference_share']:.0f}%")
    console.print(table)


# -- excess ---------------------------------------------------------------------------------------------------
@app.command("excess")
@cli_command
def excess_command(
    target: Annotated[Path, typer.Option("--target", help="target documents: a table file")],
    reference: Annotated[Optional[Path], typer.Option("--reference", help="reference-period documents (a table "
                                                                         "file); or use --date-column")] = None,
    earlier: Annotated[Optional[Path], typer.Option("--earlier", help="an earlier reference period, to project "
                                                                     "rising words' trends")] = None,
    text_column: TextColumn = "text",
    reference_text_column: Annotated[Optional[str], typer.Option(help="text column of --reference/--earlier "
                                                                      "(default: --text-column)")] = None,
    group_column: GroupColumn = None,
    reference_group_column: Annotated[Optional[str], typer.Option(help="group column of --reference/--earlier "
                                                                       "(default: --group-column)")] = None,
    group_prefix: GroupPrefix = False,
    groups: Groups = None,
    date_column: DateColumn = None,
    period: Period = "year",
    reference_period: Annotated[Optional[str], typer.Option(help="with --date-column: the reference period")
                                ] = None,
    target_period: Annotated[Optional[str], typer.Option(help="with --date-column: the target period")] = None,
    earlier_period: Annotated[Optional[str], typer.Option(help="with --date-column: an earlier period")] = None,
    gap: Annotated[float, typer.Option(min=0.0, help="periods from reference to target over periods from earlier "
                                                     "to reference (trend projection)")] = 1.0,
    min_ratio: Annotated[float, typer.Option(help="excess when frequency / projected >= this")] = 2.0,
    min_gap: Annotated[float, typer.Option(help="... or frequency - projected >= this")] = 0.01,
    min_documents: Annotated[int, typer.Option(min=1, help="words in fewer target documents are ignored")] = 10,
    resamples: Resamples = 1000,
    top: Annotated[int, typer.Option(min=1, help="words per group in excess_words.csv")] = 100,
    markers: Annotated[Optional[str], typer.Option(help="comma-separated marker words named in advance (style "
                                                        "words), instead of choosing them from the data")] = None,
    seed: SeedOpt = 0,
    output: OutputDirOpt = None,
) -> None:
    """Excess vocabulary between a reference and a target period, and the lower-bound share of LLM-processed
    documents, with CIs (no AI corpus needed).

    \b
    lmaudit llmuse excess --reference old.csv --reference-text-column summaries --target new.csv --text-column abstract
    lmaudit llmuse excess --target papers.csv --date-column date --reference-period 2022 --target-period 2024
    """
    from lmaudit.core.errors import ConfigError
    from lmaudit.core.hashing import file_digest
    from lmaudit.llmuse.corpus import Documents, read_documents
    from lmaudit.llmuse.excess import ExcessSettings
    from lmaudit.llmuse.runs import run_excess
    from lmaudit.llmuse.text import words

    settings = ExcessSettings(min_ratio, min_gap, min_documents, resamples, seed)
    settings.check()
    existing_path(target, "target")
    wanted = _split(groups) or None
    folder = output_dir(output)

    def by_group(docs: Documents) -> dict[str, list[frozenset[str]]]:
        sets = [frozenset(words(t)) for t in docs.texts]
        out = {"all": sets}
        for g in sorted({g for g in docs.groups if g is not None}):
            out[g] = [s for s, mine in zip(sets, docs.groups) if mine == g]
        return out

    def read(path: Path, text: str, group: str | None, **extra) -> Documents:
        return read_documents(path, text_column=text, group_column=group, group_prefix=group_prefix, groups=wanted,
                              **extra)

    if date_column:
        if reference is not None or earlier is not None or not (reference_period and target_period):
            raise ConfigError("with --date-column give --reference-period and --target-period (and no "
                              "--reference/--earlier files)")
        docs = read(target, text_column, group_column, date_column=date_column, period=period)
        pick = {name: [i for i, p in enumerate(docs.periods) if p == value]
                for name, value in (("reference", reference_period), ("target", target_period),
                                    ("earlier", earlier_period)) if value}
        for name, rows in pick.items():
            if not rows:
                raise ConfigError(f"no documents in the {name} period (periods found: "
                                  f"{', '.join(sorted(set(filter(None, docs.periods))))})")
        parts = {name: by_group(docs.subset(rows)) for name, rows in pick.items()}
        labels = [p for p in (earlier_period, reference_period, target_period) if p]
    else:
        if reference is None:
            raise ConfigError("give --reference FILE (or --date-column with --reference-period/--target-period)")
        existing_path(reference, "reference")
        ref_text, ref_group = reference_text_column or text_column, reference_group_column or group_column
        parts = {"target": by_group(read(target, text_column, group_column)),
                 "reference": by_group(read(reference, ref_text, ref_group))}
        if earlier is not None:
            parts["earlier"] = by_group(read(existing_path(earlier, "earlier"), ref_text, ref_group))
        labels = [str(p) for p in (earlier, reference, target) if p]
    identity = {"target": file_digest(target), "reference": file_digest(reference) if reference else None,
                "earlier": file_digest(earlier) if earlier else None, "columns": [text_column, reference_text_column,
                group_column, reference_group_column, date_column, period], "periods": labels, "gap": gap,
                "groups": wanted, "group_prefix": group_prefix}
    run_dir, found, _ = run_excess(parts["reference"], parts["target"], settings, earlier=parts.get("earlier"),
                                   gap=gap, periods=labels, output_dir=folder, identity=identity, top=top,
                                   markers=[m.lower() for m in _split(markers)] or None)
    _excess_table(found)
    errors.print(f"run directory: {run_dir}  (excess_words.csv, excess.png)", highlight=False)


def _excess_table(found: dict) -> None:
    from rich.table import Table

    table = Table(title="excess vocabulary: lower bound on the share of LLM-processed documents")
    for column in ("group", "documents", "excess words", "markers", "lower bound [95% CI]",
                   "top excess words"):
        table.add_column(column)
    for group, result in found.items():
        top = ", ".join(w.word for w in result.words if w.excess)[:60]
        table.add_row(group, str(result.n_target), str(sum(w.excess for w in result.words)),
                      str(len(result.markers)), f"{100 * result.lower_bound:.2f}% [{100 * result.ci.low:.2f}, "
                      f"{100 * result.ci.high:.2f}]", top)
    console.print(table)
