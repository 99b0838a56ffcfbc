"""`lmaudit contamination`: find benchmark items in training data (substring, ngram) or score them (mink)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from lmaudit.cli.options import (
    CacheOpt,
    DataDirOpt,
    LimitOpt,
    ModelArgOpt,
    OptionalModelOpt,
    OutputDirOpt,
    PrivateCacheOpt,
    QuietOpt,
    SeedOpt,
    TasksOpt,
    build_tasks,
    cli_command,
    console,
    load_model_for_cli,
    new_app,
    output_dir as check_output_dir,
)

app = new_app("Find benchmark items in training data (substring, ngram) or score membership (mink).",
              no_args_is_help=False)
METHODS = ("substring", "ngram", "mink")
FLAGS = "flags.jsonl"


@app.callback(invoke_without_command=True)
@cli_command
def contamination(
    tasks: TasksOpt = "mmlu",
    method: Annotated[str, typer.Option(help="substring (GPT-4 report), ngram (word n-grams) or mink (Min-K%)")
                      ] = "substring",
    corpus: Annotated[list[str], typer.Option(help="training data: file, glob or folder (.jsonl, .txt, .parquet, "
                                                   ".gz); repeatable")] = [],
    executor: Annotated[str, typer.Option(help="local (process pool) or ray")] = "local",
    workers: Annotated[int, typer.Option(min=1, help="processes (local) or Ray actors")] = 1,
    output_dir: OutputDirOpt = None,
    text_field: Annotated[str, typer.Option(help="JSONL/Parquet field with the document text")] = "text",
    id_field: Annotated[str, typer.Option(help="JSONL/Parquet field with the document id, if any")] = "id",
    limit: LimitOpt = None,
    data_dir: DataDirOpt = None,
    seed: SeedOpt = 0,
    length: Annotated[int, typer.Option(min=1, help="substring: characters per substring")] = 50,
    count: Annotated[int, typer.Option(min=1, help="substring: substrings per item")] = 3,
    min_chars: Annotated[int, typer.Option(help="substring: shorter items are not checked")] = 20,
    ngram_size: Annotated[int, typer.Option(min=1, help="ngram: words per n-gram")] = 13,
    min_words: Annotated[int, typer.Option(help="ngram: shorter items are not checked")] = 8,
    threshold: Annotated[Optional[float], typer.Option(help="ngram: overlap fraction that flags (default: any); "
                                                            "mink: score at or above which an item is flagged")] = None,
    max_evidence: Annotated[int, typer.Option(help="matching documents kept as evidence per item")] = 5,
    model: OptionalModelOpt = None,
    model_arg: ModelArgOpt = [],
    k: Annotated[float, typer.Option(help="mink: fraction of least likely tokens averaged")] = 0.2,
    labels: Annotated[Optional[Path], typer.Option(help="mink: a flags file whose verdicts are AUROC's labels")
                      ] = None,
    nonmembers: Annotated[list[str], typer.Option(help="mink: text the model never saw (file, glob or folder); "
                                                       "length-matched excerpts are scored against the items")] = [],
    cache: CacheOpt = None,
    private_cache: PrivateCacheOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Check a benchmark against training data; writes a run directory with one flag per item (flags.jsonl,
    with its evidence), manifest.json and results.json.

    \b
    lmaudit contamination --tasks mmlu --corpus 'data/*.jsonl.gz' --method substring --workers 2
    lmaudit contamination --tasks mmlu --corpus 'data/*.jsonl.gz' --method ngram --executor ray
    lmaudit contamination --tasks mmlu --model smollm2 --method mink --nonmembers 'after_cutoff/*.txt'
    """
    from lmaudit.contamination import items_from_tasks, scan_corpus, write_flags
    from lmaudit.contamination.results import summary
    from lmaudit.core.errors import ConfigError, UnknownNameError
    from lmaudit.core.results import MetricRow, envelope
    from lmaudit.runner import ModelRole, RunSession

    if method not in METHODS:
        raise UnknownNameError("method", method, list(METHODS))
    if method == "mink":
        if corpus:
            raise ConfigError("--corpus is for substring and ngram; mink reads the model (--model) and, for a "
                              "reference, --nonmembers")
        if not model:
            raise ConfigError("--method mink needs --model (a white-box spec such as smollm2)")
        params: dict[str, Any] = {"k": k, "threshold": threshold}
    else:
        if model or labels or nonmembers:
            raise ConfigError("--model, --labels and --nonmembers are for --method mink")
        if not corpus:
            raise ConfigError("give the training data with --corpus (a file, glob or folder; repeatable)")
        if method == "substring" and threshold is not None:
            raise ConfigError("--threshold is for ngram and mink; a substring match always flags")
        params = ({"length": length, "count": count, "min_chars": min_chars, "seed": seed} if method == "substring"
                  else {"n": ngram_size, "min_words": min_words, "threshold": threshold or 0.0})
    task_list = build_tasks(tasks, {"data_dir": str(data_dir)} if data_dir else {})
    items = items_from_tasks(task_list, limit)
    check_output_dir(output_dir)
    roles = [ModelRole("target", load_model_for_cli(model, model_arg), model)] if method == "mink" else []
    identity = {"tasks": {t.name: t.config() for t in task_list}, "limit": limit, "method": method,
                "params": params, "corpus": sorted(corpus)}
    with RunSession.open(output_dir, kind="contamination", identity=identity, roles=roles,
                         options={"executor": executor, "workers": workers}, cache_path=cache,
                         shared_cache=not private_cache, progress=not quiet,
                         name=f"contamination-{method}") as session:
        rows: list[MetricRow] = []
        if method == "mink":
            flags, rows = _mink(session, items, k, threshold, labels, nonmembers, seed)
        else:
            result = scan_corpus(items, corpus, method=method, executor=executor, workers=workers,
                                 text_field=text_field, id_field=id_field, max_evidence=max_evidence,
                                 progress=not quiet, **params)
            flags = result.flags
            session.note(scan=result.manifest())
            stats = result.stats
            console.print(f"scanned {stats.files} file(s), {stats.documents:,} documents, "
                          f"{stats.text_bytes / 1e6:,.1f} MB of text in {stats.seconds:.1f} s "
                          f"({stats.mb_per_s:,.1f} MB/s, {executor}, {workers} worker(s))", highlight=False)
        write_flags(flags, session.run.path / FLAGS)
        counts = summary(flags)
        for name, row in counts.items():
            rows += [MetricRow(f"items_{key}", value, n=row["items"], task=name) for key, value in row.items()]
        session.finish(envelope("contamination", rows, method=method, params=params, counts=counts, flags=FLAGS))
    table = Table(title=f"contamination ({method})")
    for column in ("task", "items", "contaminated", "clean", "not judged"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for name, row in counts.items():
        table.add_row(name, str(row["items"]), str(row["contaminated"]), str(row["clean"]), str(row["not_judged"]))
    console.print(table)
    console.print(f"run directory: {session.run.path}  (flags: {session.run.path / FLAGS})", highlight=False)


def _mink(session: Any, items: list, k: float, threshold: float | None, labels: Path | None,
          nonmembers: list[str], seed: int) -> tuple[list, list]:
    from lmaudit.contamination import corpus_shards, read_batches, read_flags
    from lmaudit.contamination.mink import auroc, compare_to_nonmembers, mink_flags
    from lmaudit.core.errors import ConfigError
    from lmaudit.core.results import MetricRow

    flags = mink_flags(session, items, k=k, threshold=threshold)
    scores = [f.score for f in flags]
    rows = [MetricRow("mink_mean", sum(scores) / len(scores), n=len(scores))]
    console.print(f"Min-K% (k={k}) over {len(flags)} items: mean {rows[0].value:.3f}", highlight=False)
    if labels:
        known = read_flags(labels)
        labelled = [(f.score, known[f.key].contaminated) for f in flags
                    if f.key in known and known[f.key].contaminated is not None]
        if not labelled:
            raise ConfigError(f"{labels} judges none of these items; scan the same task first")
        value = auroc([s for s, _ in labelled], [bool(c) for _, c in labelled])
        rows.append(MetricRow("auroc_vs_labels", value, n=len(labelled)))
        console.print(f"AUROC against {labels} ({sum(c for _, c in labelled)} contaminated of {len(labelled)}): "
                      f"{value:.3f}", highlight=False)
    if nonmembers:
        documents = [text for shard in corpus_shards(nonmembers) for batch in read_batches(shard)
                     for text in batch.texts]
        comparison = compare_to_nonmembers(session, items, documents, k=k, seed=seed)
        rows.append(MetricRow("auroc_vs_nonmembers", comparison.auroc, n=2 * len(items)))
        console.print(f"AUROC items vs length-matched non-member excerpts ({len(items)} each): "
                      f"{comparison.auroc:.3f} (item mean {sum(comparison.item_scores) / len(items):.3f}, "
                      f"non-member mean {sum(comparison.nonmember_scores) / len(items):.3f})", highlight=False)
    return flags, rows


def split_table(task: str, split: dict[str, Any]) -> Table:
    """The table `lmaudit eval --contamination` prints: one row per metric, subsets side by side."""
    counts = split["counts"]
    table = Table(title=f"{task}: scores without contaminated items ({', '.join(split['methods'])}; "
                        f"{counts['unchecked']} not checked)")
    table.add_column("metric")
    for name in ("full", "clean", "contaminated"):
        table.add_column(f"{name} (n={counts[name]})", justify="right")
    table.add_column("reported (lower of full, clean)", justify="right")
    for metric, summary in split["subsets"]["full"]["metrics"].items():
        cells = []
        for name in ("full", "clean", "contaminated"):
            value = split["subsets"][name]["metrics"][metric]
            cells.append("-" if value["n"] == 0 else f"{value['value']:.4f} ± {value['stderr']:.4f}")
        reported = split["reported"][metric]
        cells.append("-" if reported is None else f"{reported['value']:.4f} ({reported['subset']})")
        table.add_row(metric, *cells)
    return table
