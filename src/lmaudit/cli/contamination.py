"""`lmaudit contamination`: find benchmark items in training data (substring, ngram) or score them (mink)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
console = Console()
errors = Console(stderr=True)


@app.callback(invoke_without_command=True)
def contamination(
    task: Annotated[str, typer.Option(help="comma-separated task names (see `lmaudit tasks`)")] = "mmlu",
    method: Annotated[str, typer.Option(help="substring (GPT-4 report), ngram (word n-grams) or mink (Min-K%)")
                      ] = "substring",
    corpus: Annotated[list[str], typer.Option(help="training data: file, glob or folder (.jsonl, .txt, .parquet, "
                                                   ".gz); repeatable")] = [],
    executor: Annotated[str, typer.Option(help="local (process pool) or ray")] = "local",
    workers: Annotated[int, typer.Option(help="processes (local) or Ray actors; each scans one file at a time")
                       ] = 1,
    output: Annotated[Optional[Path], typer.Option(help="flags file (JSONL); default flags-<task>-<method>.jsonl")
                      ] = None,
    text_field: Annotated[str, typer.Option(help="JSONL/Parquet field with the document text")] = "text",
    id_field: Annotated[str, typer.Option(help="JSONL/Parquet field with the document id, if any")] = "id",
    limit: Annotated[Optional[int], typer.Option(help="at most N items per task (those `eval --limit` takes)")
                     ] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="dataset folder (default $LMAUDIT_DATA_DIR)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the substring draw and of the non-member sample")] = 0,
    length: Annotated[int, typer.Option(help="substring: characters per substring")] = 50,
    count: Annotated[int, typer.Option(help="substring: substrings per item")] = 3,
    min_chars: Annotated[int, typer.Option(help="substring: shorter items are not checked")] = 20,
    n: Annotated[int, typer.Option("--n", help="ngram: words per n-gram")] = 13,
    min_words: Annotated[int, typer.Option(help="ngram: shorter items are not checked")] = 8,
    threshold: Annotated[Optional[float], typer.Option(help="ngram: overlap fraction that flags (default: any); "
                                                            "mink: score at or above which an item is flagged")] = None,
    max_evidence: Annotated[int, typer.Option(help="matching documents kept as evidence per item")] = 5,
    model: Annotated[Optional[str], typer.Option(help="mink: a white-box model spec (smollm2, hf:..., gguf:...)")
                     ] = None,
    k: Annotated[float, typer.Option(help="mink: fraction of least likely tokens averaged")] = 0.2,
    labels: Annotated[Optional[Path], typer.Option(help="mink: a flags file whose verdicts are AUROC's labels")
                      ] = None,
    nonmembers: Annotated[list[str], typer.Option(help="mink: text the model never saw (file, glob or folder); "
                                                       "length-matched excerpts are scored against the items")] = [],
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Check a benchmark against training data and write one flag per item (JSONL) with its evidence.

    \b
    lmaudit contamination --task mmlu --corpus 'data/*.jsonl.gz' --method substring --workers 2
    lmaudit contamination --task mmlu --corpus 'data/*.jsonl.gz' --method ngram --executor ray
    lmaudit contamination --task mmlu --model smollm2 --method mink --nonmembers 'after_cutoff/*.txt'
    """
    options = dict(locals())
    from lmaudit.cli.main import friendly  # here, not at the top: main imports this module to mount it

    friendly(_run)(**options)


def _run(task: str, method: str, corpus: list[str], executor: str, workers: int, output: Path | None,
         text_field: str, id_field: str, limit: int | None, data_dir: Path | None, seed: int, length: int,
         count: int, min_chars: int, n: int, min_words: int, threshold: float | None, max_evidence: int,
         model: str | None, k: float, labels: Path | None, nonmembers: list[str], quiet: bool) -> None:
    from lmaudit.cli.main import build_tasks
    from lmaudit.contamination import items_from_tasks, scan_corpus, write_flags
    from lmaudit.contamination.results import summary
    from lmaudit.core.errors import ConfigError, UnknownNameError

    methods = ("substring", "ngram", "mink")
    if method not in methods:
        raise UnknownNameError("method", method, list(methods))
    tasks = build_tasks(task, {"data_dir": str(data_dir)} if data_dir else {})
    items = items_from_tasks(tasks, limit)
    output = output or Path(f"flags-{task.replace(',', '+')}-{method}.jsonl")
    if method == "mink":
        if corpus:
            raise ConfigError("--corpus is for substring and ngram; mink reads the model (--model) and, for a "
                              "reference, --nonmembers")
        flags = _mink(items, model, k, threshold, labels, nonmembers, seed, quiet)
        write_flags(flags, output)
    else:
        if model or labels or nonmembers:
            raise ConfigError("--model, --labels and --nonmembers are for --method mink")
        if not corpus:
            raise ConfigError("give the training data with --corpus (a file, glob or folder; repeatable)")
        if method == "substring" and threshold is not None:
            raise ConfigError("--threshold is for ngram and mink; a substring match always flags")
        params: dict[str, Any] = ({"length": length, "count": count, "min_chars": min_chars, "seed": seed}
                                  if method == "substring" else
                                  {"n": n, "min_words": min_words, "threshold": threshold or 0.0})
        result = scan_corpus(items, corpus, method=method, executor=executor, workers=workers,
                             text_field=text_field, id_field=id_field, max_evidence=max_evidence,
                             progress=not quiet, **params)
        flags = result.flags
        write_flags(flags, output)
        manifest = output.with_name(output.name.removesuffix(".jsonl") + ".manifest.json")
        manifest.write_text(json.dumps(result.manifest(), indent=2) + "\n", encoding="utf-8")
        stats = result.stats
        console.print(f"scanned {stats.files} file(s), {stats.documents:,} documents, {stats.text_bytes / 1e6:,.1f} MB "
                      f"of text in {stats.seconds:.1f} s ({stats.mb_per_s:,.1f} MB/s, {executor}, "
                      f"{workers} worker(s)); manifest: {manifest}", highlight=False)
    table = Table(title=f"contamination ({method})")
    for column in ("task", "items", "contaminated", "clean", "not judged"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for name, counts in summary(flags).items():
        table.add_row(name, str(counts["items"]), str(counts["contaminated"]), str(counts["clean"]),
                      str(counts["not_judged"]))
    console.print(table)
    console.print(f"flags: {output}", highlight=False)


def _mink(items: list, model_spec: str | None, k: float, threshold: float | None, labels: Path | None,
          nonmembers: list[str], seed: int, quiet: bool) -> list:
    from lmaudit.contamination.corpus import corpus_shards, read_batches
    from lmaudit.contamination.mink import auroc, compare_to_nonmembers, mink_flags
    from lmaudit.contamination.results import read_flags
    from lmaudit.core.errors import ConfigError
    from lmaudit.models import load_model

    if not model_spec:
        raise ConfigError("--method mink needs --model (a white-box spec such as smollm2)")
    errors.print(f"loading model [bold]{model_spec}[/] ...", highlight=False)
    loaded = load_model(model_spec)
    flags = mink_flags(loaded, items, k=k, threshold=threshold, progress=not quiet)
    scores = [f.score for f in flags]
    console.print(f"Min-K% (k={k}) over {len(flags)} items: mean {sum(scores) / len(scores):.3f}", highlight=False)
    if labels:
        known = read_flags(labels)
        labelled = [(f.score, known[f.key].contaminated) for f in flags
                    if f.key in known and known[f.key].contaminated is not None]
        if not labelled:
            raise ConfigError(f"{labels} judges none of these items; scan the same task first")
        value = auroc([s for s, _ in labelled], [bool(c) for _, c in labelled])
        console.print(f"AUROC against {labels} ({sum(c for _, c in labelled)} contaminated of {len(labelled)}): "
                      f"{value:.3f}", highlight=False)
    if nonmembers:
        documents = [text for shard in corpus_shards(nonmembers) for batch in read_batches(shard)
                     for text in batch.texts]
        comparison = compare_to_nonmembers(loaded, items, documents, k=k, seed=seed, progress=not quiet)
        console.print(f"AUROC items vs length-matched non-member excerpts ({len(items)} each): "
                      f"{comparison.auroc:.3f} (item mean {sum(comparison.item_scores) / len(items):.3f}, "
                      f"non-member mean {sum(comparison.nonmember_scores) / len(items):.3f})", highlight=False)
    return flags


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
