"""`lmaudit influence fit` (factors) and `lmaudit influence scores` (queries against a corpus)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    load_model_for_cli,
    new_app,
)
from lmaudit.cli.options import (
    output_dir as check_output_dir,
)

app = new_app("Influence functions (EK-FAC): which training sequences raised the probability of a completion.")

ModulesOpt = Annotated[list[str], typer.Option("--modules", help="tracked linear layers by name pattern "
                                                                 "(repeatable or comma-separated), e.g. "
                                                                 "'layers.*.mlp.*'")]
CorpusOpt = Annotated[list[str], typer.Option("--corpus", help="training data: file, glob or folder (.jsonl, .txt, "
                                                               ".parquet, .gz); repeatable")]
SeqLenOpt = Annotated[int, typer.Option("--seq-len", min=2, help="tokens per training sequence")]
StrategyOpt = Annotated[str, typer.Option("--strategy", help="identity, diagonal, kfac or ekfac")]
FisherOpt = Annotated[str, typer.Option("--fisher", help="true (labels sampled from the model, seeded) or empirical")]
DampingOpt = Annotated[float | None, typer.Option("--damping", help="absolute damping (default: --damping-scale "
                                                                       "x each layer's mean eigenvalue)")]
DampingScaleOpt = Annotated[float, typer.Option("--damping-scale", help="damping as a multiple of the mean "
                                                                        "eigenvalue")]
CovarianceOpt = Annotated[str, typer.Option("--covariance", help="K-FAC's gradient factor averaged per 'sequence' "
                                                                 "(consistent with EK-FAC) or per 'token' "
                                                                 "(kronfluence's convention)")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="sequences per forward and backward pass")]
ChunkOpt = Annotated[int, typer.Option("--chunk-size", min=1, help="sequences per work unit (checkpoint and Ray "
                                                                   "task)")]
ExecutorOpt = Annotated[str, typer.Option("--executor", help="local, or ray (RAY_ADDRESS's cluster or a local one)")]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, help="Ray actors, each with its own model")]
TextFieldOpt = Annotated[str, typer.Option("--text-field", help="JSONL/Parquet field with the document text")]
IdFieldOpt = Annotated[str, typer.Option("--id-field", help="JSONL/Parquet field with the document id, if any")]
SampleOpt = Annotated[int | None, typer.Option("--sample", min=1, help="fit on a seeded sample of N documents")]
IncludeTiedOpt = Annotated[bool, typer.Option("--include-tied", help="also track output heads tied to the input "
                                                                     "embedding")]
CheckpointOpt = Annotated[float, typer.Option("--checkpoint-seconds", min=0, help="how often a fitting stage saves "
                                                                                  "its running sums")]


def _modules(values: list[str]) -> list[str]:
    return values or ["layers.*.mlp.*"]


def _settings(strategy: str, fisher: str, damping: float | None, damping_scale: float, covariance: str,
              seed: int) -> Any:
    from lmaudit.influence import FactorSettings

    return FactorSettings(strategy=strategy, fisher=fisher, damping=damping, damping_scale=damping_scale,
                          covariance=covariance, seed=seed)


def _corpus(patterns: list[str], seq_len: int, text_field: str, id_field: str, sample: int | None,
            flag: str = "--corpus") -> Any:
    from lmaudit.contamination import corpus_shards
    from lmaudit.core.errors import ConfigError
    from lmaudit.influence import CorpusSpec

    if not patterns:
        raise ConfigError(f"give the training data with {flag} (a file, glob or folder; repeatable)")
    corpus_shards(patterns)  # missing files, unknown formats: one line, before the model loads
    return CorpusSpec(tuple(patterns), seq_len, text_field, id_field, sample)


def _run_options(batch_size: int, chunk_size: int, executor: str, workers: int, quiet: bool, include_tied: bool,
                 cache: Path | None, private_cache: bool, checkpoint_seconds: float) -> Any:
    from lmaudit.influence import RunOptions

    return RunOptions(batch_size=batch_size, chunk_size=chunk_size, executor=executor, workers=workers,
                      progress=not quiet, include_tied=include_tied, shared_cache=not private_cache,
                      cache_path=str(cache) if cache else None, checkpoint_seconds=checkpoint_seconds)


def _log(message: str) -> None:
    errors.print(message, highlight=False, soft_wrap=True)


@app.command("fit")
@cli_command
def fit_command(
    model: ModelOpt = "smollm2", model_arg: ModelArgOpt = [], modules: ModulesOpt = [], corpus: CorpusOpt = [],
    seq_len: SeqLenOpt = 128, text_field: TextFieldOpt = "text", id_field: IdFieldOpt = "id",
    sample: SampleOpt = None, strategy: StrategyOpt = "ekfac", fisher: FisherOpt = "true",
    damping: DampingOpt = None, damping_scale: DampingScaleOpt = 0.1, covariance: CovarianceOpt = "sequence",
    seed: SeedOpt = 0, batch_size: BatchOpt = 8, chunk_size: ChunkOpt = 64, executor: ExecutorOpt = "local",
    workers: WorkersOpt = 1, include_tied: IncludeTiedOpt = False, checkpoint_seconds: CheckpointOpt = 30.0,
    output_dir: OutputDirOpt = None, cache: CacheOpt = None, private_cache: PrivateCacheOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fit the curvature factors of the tracked layers on a corpus (resumable); `scores --factors DIR` uses them.

    \b
    lmaudit influence fit --model smollm2 --modules 'layers.*.mlp.*' --corpus 'data/*.jsonl.gz' --output-dir f
    """
    from lmaudit.cli.options import model_options
    from lmaudit.influence import fit_run

    model_options(model, model_arg)  # an unknown spec or --model-arg: refused before anything else
    settings = _settings(strategy, fisher, damping, damping_scale, covariance, seed)
    spec = _corpus(corpus, seq_len, text_field, id_field, sample)
    check_output_dir(output_dir)
    options = _run_options(batch_size, chunk_size, executor, workers, quiet, include_tied, cache, private_cache,
                           checkpoint_seconds)
    loaded = load_model_for_cli(model, model_arg)
    run = fit_run(loaded, modules=_modules(modules), corpus=spec, settings=settings, output_dir=output_dir,
                  model_spec=model, model_options=_model_args(model_arg), options=options, log=_log)
    console.print(f"fitted {settings.strategy} factors on {run.factors.sequences:,} sequences "
                  f"({run.factors.tokens:,} tokens), {len(run.factors.layers)} layers: {run.run_dir / 'factors'}",
                  highlight=False)
    _print_timings(run.timings)


@app.command("scores")
@cli_command
def scores_command(
    model: ModelOpt = "smollm2", model_arg: ModelArgOpt = [], modules: ModulesOpt = [], corpus: CorpusOpt = [],
    queries: Annotated[Path | None, typer.Option("--queries", help="JSONL/CSV/Parquet file of queries "
                                                                      "(prompt, completion, optional id)")] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", help="one query's prompt (with --completion)")] = None,
    completion: Annotated[str | None, typer.Option("--completion", help="one query's completion")] = None,
    prompt_field: Annotated[str, typer.Option("--prompt-field")] = "prompt",
    completion_field: Annotated[str, typer.Option("--completion-field")] = "completion",
    factors: Annotated[Path | None, typer.Option("--factors", help="factors from `lmaudit influence fit` (its run "
                                                                      "directory); default: fit them here")] = None,
    fit_corpus: Annotated[list[str], typer.Option("--fit-corpus", help="fit the factors on this data instead of "
                                                                       "--corpus")] = [],
    sample: SampleOpt = None,
    candidates: Annotated[int | None, typer.Option("--candidates", min=1, help="score only the N most similar "
                                                                                  "sequences per query (TF-IDF)")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="sequences per query in results, tokens and "
                                                              "pictures")] = 10,
    query_rank: Annotated[int | None, typer.Option("--query-rank", min=1, help="low-rank query gradients of this "
                                                                                  "rank (query batching)")] = None,
    seq_len: SeqLenOpt = 128, text_field: TextFieldOpt = "text", id_field: IdFieldOpt = "id",
    strategy: StrategyOpt = "ekfac", fisher: FisherOpt = "true", damping: DampingOpt = None,
    damping_scale: DampingScaleOpt = 0.1, covariance: CovarianceOpt = "sequence", seed: SeedOpt = 0,
    batch_size: BatchOpt = 8, chunk_size: ChunkOpt = 64, executor: ExecutorOpt = "local", workers: WorkersOpt = 1,
    include_tied: IncludeTiedOpt = False, checkpoint_seconds: CheckpointOpt = 30.0, output_dir: OutputDirOpt = None,
    cache: CacheOpt = None, private_cache: PrivateCacheOpt = False, quiet: QuietOpt = False,
) -> None:
    """Which training sequences raised log p(completion | prompt): scores.parquet, tokens.jsonl, results.json and a
    picture of the top sequences' tokens coloured by influence (resumable).

    \b
    lmaudit influence scores --queries q.jsonl --corpus 'data/*.jsonl.gz' --candidates 1000 --output-dir s
    lmaudit influence scores --prompt 'The capital of France is' --completion ' Paris' --corpus data/ --factors f
    """
    from lmaudit.cli.options import model_options
    from lmaudit.core.errors import ConfigError
    from lmaudit.influence import Query, read_queries, resolve_factors, score_run

    model_options(model, model_arg)  # an unknown spec or --model-arg: refused before anything else
    if queries is not None and (prompt is not None or completion is not None):
        raise ConfigError("give queries either as --queries FILE or as --prompt and --completion, not both")
    if queries is not None:
        asked = read_queries(queries, prompt_field=prompt_field, completion_field=completion_field)
    elif prompt is not None and completion:
        asked = [Query("q0", prompt, completion)]
    else:
        raise ConfigError("no query: give --queries FILE, or --prompt and a non-empty --completion")
    settings = _settings(strategy, fisher, damping, damping_scale, covariance, seed)
    spec = _corpus(corpus, seq_len, text_field, id_field, None)
    fit_spec = _corpus(fit_corpus, seq_len, text_field, id_field, sample, "--fit-corpus") if fit_corpus else None
    if sample is not None and fit_spec is None:
        fit_spec = _corpus(corpus, seq_len, text_field, id_field, sample)
    if factors is not None:
        resolve_factors(factors)
    check_output_dir(output_dir)
    options = _run_options(batch_size, chunk_size, executor, workers, quiet, include_tied, cache, private_cache,
                           checkpoint_seconds)
    loaded = load_model_for_cli(model, model_arg)
    run = score_run(loaded, asked, modules=_modules(modules), corpus=spec, settings=settings, factors_dir=factors,
                    fit_corpus=fit_spec, candidates=candidates, top_k=top_k, query_rank=query_rank,
                    output_dir=output_dir, model_spec=model, model_options=_model_args(model_arg), options=options,
                    log=_log)
    print_results(run.run_dir, run.results)
    _print_timings(run.timings)


def _model_args(pairs: list[str]) -> dict[str, Any]:
    from lmaudit.cli.options import parse_pairs

    return parse_pairs(pairs, "--model-arg")


def _print_timings(timings: dict[str, float]) -> None:
    if timings:
        errors.print("seconds per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()), highlight=False)


def print_results(run_dir: Path, results: dict[str, Any]) -> None:
    """The top-k table of an influence run (what `lmaudit show` prints for one)."""
    from rich.table import Table

    if results.get("stage") == "fit":
        console.print(f"influence factors ({results['strategy']['strategy']}, {results['strategy']['fisher']} "
                      f"Fisher) for {len(results['layers'])} layers in {Path(run_dir) / results['factors']}",
                      highlight=False)
        return
    table = Table(title=f"influence ({results['strategy']['strategy']}, {results['sequences_scored']:,} sequences "
                        f"scored): change in log p(completion) per unit up-weighting")
    for column in ("query", "log p", "rank", "sequence", "score", "largest layer"):
        table.add_column(column, justify="right" if column in {"log p", "rank", "score"} else "left")
    for query in results["queries"]:
        logprob = "" if query["logprob"] is None else f"{query['logprob']:.3f}"
        for entry in query["top"]:
            layer = max(entry["per_layer"], key=lambda name: abs(entry["per_layer"][name]))
            table.add_row(query["query_id"] if entry["rank"] == 1 else "", logprob if entry["rank"] == 1 else "",
                          str(entry["rank"]), entry["sequence_id"], f"{entry['score']:+.4g}", layer)
    console.print(table)
    console.print(results["how_to_read"], highlight=False)
    files = results.get("files", {})
    console.print(f"run directory: {run_dir} ({', '.join(files.values())})", highlight=False)
