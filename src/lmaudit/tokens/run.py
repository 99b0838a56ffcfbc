"""`lmaudit tokens premium` / `cost` as a Python API: count, measure, write a run directory.

The run goes through RunSession (kind "tokens"): the directory's lock, the manifest with the corpus files'
hashes, and resumption. One SampleRecord per (tokenizer, language) is appended as soon as a tokenizer has been
counted, so a killed run keeps every tokenizer it finished; rerunning the same command counts only the rest.
results.json, tokens.csv/.parquet and the pictures are functions of those records.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lmaudit.core.errors import DataError
from lmaudit.core.output import write_table
from lmaudit.core.results import MetricRow, envelope
from lmaudit.core.types import SampleRecord
from lmaudit.runner import RunSession
from lmaudit.tokens.corpora import ParallelCorpus
from lmaudit.tokens.cost import COST_COLUMNS, CostRow, Price, Workload, cost_rows
from lmaudit.tokens.counting import count_all, segment
from lmaudit.tokens.measures import COLUMNS, PARITY_TOLERANCE, UNKNOWN_THRESHOLD, PremiumRow, premiums, summary
from lmaudit.tokens.plots import premium_figure
from lmaudit.tokens.published import PETROV_COLUMNS, petrov_counts
from lmaudit.tokens.tokenizers import Tokenizer

TASK = "tokens/premium"
_TEXT_FIELDS = ("language", "name", "script", "tokenizer")


@dataclass
class Settings:
    reference: str = "eng_Latn"
    seed: int = 0
    context_window: int = 8192
    parity_tolerance: float = PARITY_TOLERANCE
    unknown_threshold: float = UNKNOWN_THRESHOLD


@dataclass
class PremiumReport:
    run_dir: Path
    rows: list[PremiumRow]
    summaries: dict[str, dict[str, Any]]
    cost: list[CostRow] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    counted: list[str] = field(default_factory=list)  # tokenizers counted in this invocation (not resumed)


def _record(row: PremiumRow) -> SampleRecord:
    raw = row.to_dict()
    scores = {k: float(v) for k, v in raw.items() if k not in _TEXT_FIELDS}
    return SampleRecord(task=TASK, sample_id=f"{row.tokenizer}|{row.language}", target=None,
                        metadata={k: raw[k] for k in _TEXT_FIELDS}, requests=[], responses=[], scores=scores)


def _row(record: SampleRecord) -> PremiumRow:
    values: dict[str, Any] = dict(record.metadata)
    for name, kind in PremiumRow.__dataclass_fields__.items():
        if name in record.scores:
            raw = record.scores[name]
            values[name] = bool(raw) if kind.type == "bool" else int(raw) if kind.type == "int" else raw
    return PremiumRow(**values)


def _corpus_digest(corpus: ParallelCorpus) -> str:
    return hashlib.sha256(json.dumps(sorted(corpus.files.items())).encode()).hexdigest()[:16]


def petrov_check(rows: list[PremiumRow], specs: dict[str, str], corpus: ParallelCorpus) -> dict[str, Any]:
    """For tokenizers in Petrov et al.'s table, on the full FLORES-200: how many languages' counts equal theirs."""
    if corpus.name != "flores200":
        return {}
    try:
        published = petrov_counts()
    except DataError:  # no published table at hand: nothing to compare with
        return {}
    out = {}
    for spec, name in specs.items():
        column = PETROV_COLUMNS.get(spec if ":" in spec else f"tiktoken:{spec}")
        if column is None:
            continue
        if column not in published:
            continue
        mine = {r.language: r.tokens for r in rows if r.tokenizer == name and r.language in published[column]}
        differing = sorted(code for code, tokens in mine.items() if published[column].get(code) != tokens)
        out[name] = {"column": column, "languages": len(mine), "equal": len(mine) - len(differing),
                     "differing": differing[:20]}
    return out


def measure_premiums(tokenizers: dict[str, Tokenizer], corpus: ParallelCorpus, settings: Settings, *,
                     output_dir: str | Path | None = None, prices: list[Price] | None = None,
                     workload: Workload | None = None, progress: bool = True,
                     command: list[str] | None = None) -> PremiumReport:
    """Premiums of every language of `corpus` under every tokenizer (spec -> tokenizer), in a run directory."""
    reference = corpus.resolve(settings.reference)
    corpus = corpus.select(None, reference)
    identity = {"command": "premium", "corpus": corpus.name, "corpus_files": _corpus_digest(corpus),
                "languages": corpus.languages, "reference": reference, "seed": settings.seed,
                "context_window": settings.context_window, "parity_tolerance": settings.parity_tolerance,
                "unknown_threshold": settings.unknown_threshold,
                "tokenizers": {spec: t.fingerprint() for spec, t in tokenizers.items()}}
    session = RunSession.open(output_dir, kind="tokens", identity=identity, command=command,
                              options={"tokenizers": list(tokenizers), "corpus": corpus.name},
                              dataset_hashes=corpus.files, progress=progress, name=f"tokens-{corpus.name}")
    with session:
        done = {r.sample_id for r in session.records() if r.task == TASK}
        todo = {spec: t for spec, t in tokenizers.items()
                if not all(f"{t.name}|{code}" in done for code in corpus.languages)}
        timings: dict[str, float] = {}
        if todo:
            began = time.perf_counter()
            segmented = segment(corpus) if any(t.separable for t in todo.values()) else None
            timings["segment"] = round(time.perf_counter() - began, 3)
            counted = count_all(todo, corpus, segmented)
            for spec, counts, seconds in tqdm(counted, desc="tokenizers", total=len(todo), unit="tokenizer",
                                              disable=not progress):
                rows = premiums(counts, reference, seed=settings.seed, parity_tolerance=settings.parity_tolerance,
                                unknown_threshold=settings.unknown_threshold, context_window=settings.context_window)
                session.append([_record(r) for r in rows if f"{r.tokenizer}|{r.language}" not in done])
                timings[spec] = round(seconds, 3)
            session.note(seconds_per_tokenizer=timings)
        wanted = {f"{t.name}|{code}" for t in tokenizers.values() for code in corpus.languages}
        rows = [_row(r) for r in session.records() if r.task == TASK and r.sample_id in wanted]
        order = {t.name: i for i, t in enumerate(tokenizers.values())}
        languages = {code: i for i, code in enumerate(corpus.languages)}
        rows.sort(key=lambda r: (order[r.tokenizer], languages[r.language]))
        report = _finish(session, rows, tokenizers, corpus, reference, prices, workload or Workload())
        report.counted = list(todo)
    return report


def _finish(session: RunSession, rows: list[PremiumRow], tokenizers: dict[str, Tokenizer], corpus: ParallelCorpus,
            reference: str, prices: list[Price] | None, workload: Workload) -> PremiumReport:
    folder = session.run.path
    names = {spec: t.name for spec, t in tokenizers.items()}
    summaries = {name: summary([r for r in rows if r.tokenizer == name]) for name in names.values()}
    for suffix in (".csv", ".parquet"):
        write_table([r.to_dict() for r in rows], folder / f"tokens{suffix}", COLUMNS)
    premium_figure(rows, folder / "premiums.png", reference=reference, corpus=corpus.name)
    costs: list[CostRow] = []
    for price in prices or []:
        by_spec = {spec: name for spec, name in names.items()}
        name = by_spec.get(price.tokenizer) or by_spec.get(price.tokenizer.removeprefix("tiktoken:"))
        costs += cost_rows(price, [r for r in rows if r.tokenizer == name], reference, workload)
    if costs:
        for suffix in (".csv", ".parquet"):
            write_table([c.to_dict() for c in costs], folder / f"cost{suffix}", COST_COLUMNS)
    metrics = []
    for row in rows:
        group = f"language={row.language}"
        metrics.append(MetricRow("premium", row.premium, None, (row.premium_ci_low, row.premium_ci_high),
                                 row.sentences, row.tokenizer, group))
        metrics.append(MetricRow("tokens", float(row.tokens), None, None, row.sentences, row.tokenizer, group))
    for name, values in summaries.items():
        metrics.append(MetricRow("median_premium", values["median_premium"], None, None, values["languages"], name))
    for c in costs:
        metrics.append(MetricRow("cost_usd", c.cost_usd, None, (c.cost_ci_low, c.cost_ci_high), None, c.model,
                                 f"language={c.language}"))
    results = envelope("tokens", metrics, command="premium", corpus=corpus.name, reference=reference,
                       languages=len(corpus.languages), sentences=corpus.size,
                       tokenizers={spec: {"name": t.name, "fingerprint": t.fingerprint(), "separable": t.separable}
                                   for spec, t in tokenizers.items()},
                       summaries=summaries, published_check=petrov_check(rows, names, corpus),
                       workload=workload.__dict__ if costs else None,
                       prices=[p.__dict__ for p in prices or []] or None,
                       files=sorted(p.name for p in folder.iterdir() if p.suffix in {".csv", ".parquet", ".png"}))
    return PremiumReport(folder, rows, summaries, costs, session.finish(results))
