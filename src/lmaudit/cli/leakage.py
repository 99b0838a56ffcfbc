"""`lmaudit leakage run`: leak MMLU into a training mix on purpose, then measure the inflation and the detectors."""

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
    ModelOpt,
    OutputDirOpt,
    PrivateCacheOpt,
    QuietOpt,
    SeedOpt,
    cli_command,
    console,
    existing_path,
    load_model_for_cli,
    new_app,
)
from lmaudit.cli.options import (
    output_dir as check_output_dir,
)

app = new_app("Benchmark leakage on purpose: train with MMLU leaked into the mix, measure inflation and detectors.")


@app.command("run")
@cli_command
def run(
    leak: Annotated[str, typer.Option("--leak", help="what to leak: mmlu:SUBJECT[,SUBJECT...]")],
    model: ModelOpt = "smollm2",
    model_arg: ModelArgOpt = [],
    control: Annotated[str, typer.Option("--control", help="held-out subjects scored as the control: "
                                         "mmlu:SUBJECT[,...], or mmlu:rest (every subject not leaked)")] = "mmlu:rest",
    setting: Annotated[str, typer.Option("--setting", help="answers (test items with answers), prompts (without), "
                                         "train (a stand-in training split of the leaked subjects)")] = "answers",
    steps: Annotated[int, typer.Option("--steps", min=1, help="optimizer steps of each training run")] = 150,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="windows per step")] = 8,
    seq_len: Annotated[int, typer.Option("--seq-len", min=2, help="tokens per training window")] = 128,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="peak learning rate (warmup, cosine decay)")] = 3e-4,
    trainable_layers: Annotated[int, typer.Option("--trainable-layers", min=0, help="train only the top N decoder "
                                                  "layers and the final norm; 0 trains every weight")] = 4,
    leak_fraction: Annotated[float, typer.Option("--leak-fraction", min=0.0, max=1.0,
                                                 help="share of training windows that start with a leaked item")] = 0.5,
    train_fraction: Annotated[float, typer.Option("--train-fraction", min=0.0, max=1.0, help="setting train: share "
                                                  "of each leaked subject's questions put in the mix")] = 0.5,
    mink_k: Annotated[float, typer.Option("--mink-k", min=0.0, max=1.0, help="Min-K%: fraction of least likely "
                                          "tokens")] = 0.2,
    limit: LimitOpt = None,
    seed: SeedOpt = 0,
    clean_corpus: Annotated[Optional[Path], typer.Option("--clean-corpus", help="clean text for the mix: .txt, "
                                                         ".jsonl/.csv (with --text-field) or a folder (default: "
                                                         "the data folder's 2025 arXiv abstracts)")] = None,
    text_field: Annotated[Optional[str], typer.Option("--text-field", help="the text column of --clean-corpus")] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch threads for training")] = 2,
    data_dir: DataDirOpt = None,
    output_dir: OutputDirOpt = None,
    cache: CacheOpt = None,
    private_cache: PrivateCacheOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train the model on clean text and on text with a leak, then compare scores and detectors (resumable)."""
    import os
    import sys

    # Before torch loads OpenMP: spinning threads slow training down many times on a shared CPU.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from lmaudit.leakage import LeakageConfig, parse_subjects, run_leakage
    from lmaudit.runner import default_run_dir

    leaked = parse_subjects(leak, "--leak")
    controls = parse_subjects(control, "--control", rest_of=leaked)
    config = LeakageConfig(leaked, controls, setting=setting, steps=steps, batch_size=batch_size, seq_len=seq_len,
                           lr=lr, trainable_layers=trainable_layers or None, leak_fraction=leak_fraction,
                           train_fraction=train_fraction, limit=limit, k=mink_k, seed=seed)
    config.check()
    if clean_corpus is not None:
        existing_path(clean_corpus, "--clean-corpus")
    out = check_output_dir(output_dir) or default_run_dir(f"leakage-{setting}")
    loaded = load_model_for_cli(model, model_arg)
    result = run_leakage(loaded, config, out, model_spec=model, clean_corpus=clean_corpus, text_field=text_field,
                         data_dir=str(data_dir) if data_dir else None, threads=threads, cache_path=cache,
                         shared_cache=not private_cache, progress=not quiet, command=sys.argv,
                         log=lambda line: console.print(line, highlight=False))
    console.print(summary_table(result))
    for name, path in result.files.items():
        console.print(f"{name}: {path}", highlight=False)


def _interval(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"[{low:+.3f}, {high:+.3f}]"


def summary_table(result: Any) -> Table:
    """The figures a reader looks for first: accuracy gains with CIs, then each detector."""
    from lmaudit.leakage import MODELS

    m = result.measurements
    table = Table(title=f"leakage ({result.config.setting}): {', '.join(result.config.leak_subjects)}")
    for column in ("measure", "subset", "base", "clean", "leak", "leak - clean (95% CI)", "leak - base (95% CI)"):
        table.add_column(column, justify="left" if column in {"measure", "subset"} else "right")
    subsets = list(dict.fromkeys(subset for _, subset in m.accuracy))
    for subset in subsets:
        gain, raw = m.differences[("leak-clean", subset)], m.differences[("leak-base", subset)]
        table.add_row("accuracy", subset, *(f"{m.accuracy[(model, subset)].value:.3f}" for model in MODELS),
                      f"{gain.value:+.3f} {_interval(gain.ci_low, gain.ci_high)}",
                      f"{raw.value:+.3f} {_interval(raw.ci_low, raw.ci_high)}")
    for subset in subsets:
        table.add_row("ECE (top)", subset, *(f"{m.calibration[(model, subset)].get('top', 'width').ece.value:.3f}"
                                             for model in MODELS), "", "")
    for subset in dict.fromkeys(subset for _, subset in m.mink_auroc):
        table.add_row("Min-K% AUROC vs held-out", subset,
                      *(f"{m.mink_auroc[(name, subset)]:.3f}" for name in MODELS), "", "")
    for subset, value in m.mink_shift_auroc.items():
        table.add_row("Min-K% shift AUROC", subset, "", "", f"{value:.3f}", "", "")
    for scan in m.scans.values():
        table.add_row(f"{scan.method} recall", "leaked", "", "", f"{scan.recall:.3f} ({scan.found}/{scan.checked})",
                      "", f"false positives {scan.false_positives}/{scan.negatives_checked}")
    return table
