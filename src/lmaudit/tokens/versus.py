"""`lmaudit tokens vs-accuracy`: scores per language against premiums, in a run directory of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmaudit.core.errors import DataError
from lmaudit.core.output import write_table
from lmaudit.core.results import MetricRow, envelope, read_envelope
from lmaudit.runner import RunSession
from lmaudit.tokens.accuracy import BUILTIN, AccuracyFit, fit, load_scores, scatter
from lmaudit.tokens.corpora import load_corpus
from lmaudit.tokens.counting import count
from lmaudit.tokens.measures import premiums
from lmaudit.tokens.published import GPT4_CITATION
from lmaudit.tokens.specs import load_tokenizer


def run_premiums(run_dir: Path, tokenizer: str | None = None) -> dict[str, float]:
    """Premiums from a run directory's results.json (rows `premium`, grouped language=<code>)."""
    path = run_dir / "results.json"
    if not path.is_file():
        raise DataError(f"{run_dir} has no results.json: run `lmaudit tokens premium` into it first")
    _, rows = read_envelope(json.loads(path.read_text(encoding="utf-8")), str(path))
    found = [r for r in rows if r.metric == "premium" and r.group and r.group.startswith("language=")]
    names = sorted({r.task for r in found if r.task})
    if tokenizer is not None and len(names) > 1:
        found = [r for r in found if r.task == tokenizer or (r.task or "").endswith(f":{tokenizer}")]
    elif len(names) > 1:
        raise DataError(f"{path} holds premiums of several tokenizers ({', '.join(names)}): pick one with --tokenizer")
    if not found:
        raise DataError(f"{path}: no premium rows" + (f" for tokenizer {tokenizer}" if tokenizer else ""))
    return {r.group.split("=", 1)[1]: r.value for r in found if r.value is not None}  # type: ignore[union-attr]


def counted_premiums(tokenizer: str, corpus: str, reference: str, languages: list[str],
                     data_dir: Path | None) -> dict[str, float]:
    text = load_corpus(corpus, data_dir=data_dir)
    present = [code for code in languages if code in text.texts]
    chosen = text.select(present, reference)
    rows = premiums(count(load_tokenizer(tokenizer), chosen), chosen.resolve(reference))
    return {r.language: r.premium for r in rows}


def relate(scores: str, *, tokenizer: str = "cl100k_base", premiums_run: Path | None = None,
           corpus: str = "flores200", reference: str = "eng_Latn", metric: str = "acc", group_key: str = "language",
           data_dir: Path | None = None, output_dir: Path | None = None, seed: int = 0,
           progress: bool = True) -> tuple[AccuracyFit, Path]:
    table = load_scores(scores, metric, group_key)
    if premiums_run is not None:
        values = run_premiums(premiums_run, tokenizer)
        source: dict[str, Any] = {"run": str(premiums_run)}
    else:
        values = counted_premiums(tokenizer, corpus, reference, list(table), data_dir)
        source = {"tokenizer": tokenizer, "corpus": corpus, "reference": reference}
    identity = {"command": "vs-accuracy", "scores": scores, "metric": metric, "premiums": source, "seed": seed}
    session = RunSession.open(output_dir, kind="tokens", identity=identity, progress=progress,
                              name="tokens-vs-accuracy")
    with session:
        result = fit(values, table, seed=seed)
        folder = session.run.path
        write_table([p.__dict__ for p in result.points], folder / "accuracy.csv",
                    ["language", "name", "premium", "accuracy"])
        title = BUILTIN.get(scores, f"scores from {scores}")
        scatter(result, folder / "accuracy_vs_premium.png", title=f"{title} against {tokenizer} premiums")
        metrics = [MetricRow("spearman", result.spearman, None, result.spearman_ci, result.n),
                   MetricRow("pearson_log2_premium", result.pearson, None, result.pearson_ci, result.n),
                   MetricRow("slope_points_per_doubling", result.slope, None, result.slope_ci, result.n)]
        session.finish(envelope("tokens", metrics, command="vs-accuracy", scores=scores,
                                citation=GPT4_CITATION if scores == "gpt4-mmlu" else None, premiums=source,
                                intercept=result.intercept, unmatched=result.unmatched,
                                points=[p.__dict__ for p in result.points]))
    return result, folder
