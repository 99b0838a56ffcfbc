"""The model side of the premium, without a translated benchmark: a local model's loss per byte on a parallel
corpus, per language, next to the premium of its own tokenizer.

Bits per byte divide the model's total negative log-likelihood of a language's sentences (in bits) by their UTF-8
bytes, so languages are compared on the same content whatever the tokenizer does with it. Per-token
log-probabilities come from the runner (TokenLogprobsRequest through RunSession.call: cached, resumable), each
sentence scored on its own after the model's start token.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmaudit.core.output import pyplot, save_figure, write_table
from lmaudit.core.results import MetricRow, envelope
from lmaudit.core.types import SampleRecord, TokenLogprobsRequest, to_dict
from lmaudit.models.base import Model, require_white_box
from lmaudit.runner import ModelRole, RunSession
from lmaudit.tokens.corpora import ParallelCorpus
from lmaudit.tokens.counting import count
from lmaudit.tokens.languages import language_name
from lmaudit.tokens.measures import premiums, resample_counts
from lmaudit.tokens.tokenizers import from_transformers

TASK = "tokens/loss"


@dataclass(frozen=True)
class LossRow:
    language: str
    name: str
    sentences: int
    bytes: int
    tokens: int
    bits_per_byte: float
    bits_per_byte_ci_low: float
    bits_per_byte_ci_high: float
    bits_per_token: float
    premium: float  # of the model's own tokenizer, on the same sentences
    premium_ci_low: float
    premium_ci_high: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LossReport:
    run_dir: Path
    rows: list[LossRow]
    results: dict[str, Any]
    seconds: float


def _sentences(corpus: ParallelCorpus) -> list[tuple[str, int, str]]:
    return [(code, index, item) for code, text in corpus.texts.items()
            for index, item in enumerate(text.items) if item.strip()]


def loss_per_byte(model: Model, corpus: ParallelCorpus, *, reference: str = "eng_Latn", model_spec: str | None = None,
                  output_dir: str | Path | None = None, seed: int = 0, progress: bool = True,
                  shared_cache: bool = True, command: list[str] | None = None) -> LossReport:
    white_box = require_white_box(model, "loss per byte")
    reference = corpus.resolve(reference)
    corpus = corpus.select(None, reference)
    tokenizer = from_transformers(white_box.tokenizer, f"model:{model.name}", f"model:{model.fingerprint()}")
    counts = count(tokenizer, corpus)
    sentences = _sentences(corpus)
    identity = {"command": "loss", "corpus": corpus.name, "languages": corpus.languages, "sentences": corpus.size,
                "reference": reference, "seed": seed}
    session = RunSession.open(output_dir, kind="tokens", identity=identity, roles=[ModelRole("target", model,
                                                                                               model_spec)],
                              command=command, dataset_hashes=corpus.files, progress=progress,
                              shared_cache=shared_cache, name=f"loss-{model.name}")
    with session:
        began = time.perf_counter()
        requests = [TokenLogprobsRequest(text) for _, _, text in sentences]
        # Sent longest first, by the model's own tokens: the runner keeps this order, so a batch's rows pad little.
        order = sorted(range(len(sentences)), key=lambda i: -counts[sentences[i][0]].item_tokens[sentences[i][1]])
        scored = dict(zip(order, session.call("target", [requests[i] for i in order], label="sentences scored")))
        answers = [scored[i] for i in range(len(sentences))]
        done = {r.sample_id for r in session.records() if r.task == TASK}
        new = []
        for (code, index, text), request, answer in zip(sentences, requests, answers):
            if f"{code}/{index}" in done:
                continue
            nll = -float(sum(answer.logprobs))
            new.append(SampleRecord(task=TASK, sample_id=f"{code}/{index}", target=None,
                                    metadata={"language": code}, requests=[to_dict(request)],
                                    responses=[to_dict(answer)],
                                    scores={"nll_bits": nll / math.log(2), "bytes": float(len(text.encode())),
                                            "tokens": float(len(answer.token_ids))}))
        session.append(new)
        seconds = time.perf_counter() - began
        session.note(sentences_scored=len(sentences), seconds_scoring=round(seconds, 3))
        own = {r.language: r for r in premiums(counts, reference, seed=seed)}
        rows = _rows(session.records(), corpus, own, seed)
        folder = session.run.path
        for suffix in (".csv", ".parquet"):
            write_table([r.to_dict() for r in rows], folder / f"loss{suffix}", list(LossRow.__dataclass_fields__))
        _figure(rows, folder / "loss_vs_premium.png", model.name, reference)
        metrics = []
        for row in rows:
            group = f"language={row.language}"
            metrics.append(MetricRow("bits_per_byte", row.bits_per_byte, None,
                                     (row.bits_per_byte_ci_low, row.bits_per_byte_ci_high), row.sentences,
                                     model.name, group))
            metrics.append(MetricRow("premium", row.premium, None, (row.premium_ci_low, row.premium_ci_high),
                                     row.sentences, tokenizer.name, group))
        results = session.finish(envelope("tokens", metrics, command="loss", corpus=corpus.name, reference=reference,
                                          model={"spec": model_spec, "name": model.name,
                                                 "fingerprint": model.fingerprint()},
                                          languages=len(rows), sentences_per_language=corpus.size))
    return LossReport(folder, rows, results, seconds)


def _rows(records: list[SampleRecord], corpus: ParallelCorpus, own: dict[str, Any], seed: int) -> list[LossRow]:
    by_language: dict[str, list[SampleRecord]] = {code: [] for code in corpus.languages}
    for record in records:
        if record.task == TASK and record.metadata.get("language") in by_language:
            by_language[record.metadata["language"]].append(record)
    rows = []
    for code, mine in by_language.items():
        if not mine:
            continue
        bits = np.array([r.scores["nll_bits"] for r in mine])
        size = np.array([r.scores["bytes"] for r in mine])
        tokens = np.array([r.scores["tokens"] for r in mine])
        draws = resample_counts(len(mine), seed)
        low, high = np.percentile((draws @ bits) / (draws @ size), [2.5, 97.5])
        premium = own[code]
        rows.append(LossRow(code, language_name(code), len(mine), int(size.sum()), int(tokens.sum()),
                            float(bits.sum() / size.sum()), float(low), float(high), float(bits.sum() / tokens.sum()),
                            premium.premium, premium.premium_ci_low, premium.premium_ci_high))
    return rows


def _figure(rows: list[LossRow], path: Path, model: str, reference: str) -> Path:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8, 5.5))
    x = np.array([r.premium for r in rows])
    y = np.array([r.bits_per_byte for r in rows])
    error = np.array([[r.bits_per_byte - r.bits_per_byte_ci_low for r in rows],
                      [r.bits_per_byte_ci_high - r.bits_per_byte for r in rows]])
    axis.errorbar(x, y, yerr=error, fmt="o", markersize=4, capsize=2)
    for row in rows:
        axis.annotate(row.language, (row.premium, row.bits_per_byte), fontsize=7, xytext=(3, 2),
                      textcoords="offset points")
    axis.set_xscale("log", base=2)
    axis.set_xlabel(f"premium of {model}'s own tokenizer against {reference} (log scale)")
    axis.set_ylabel("loss, bits per UTF-8 byte (95% bootstrap CI)")
    axis.set_title(f"{model}: loss per byte and tokenization premium per language", fontsize=10)
    axis.grid(alpha=0.3)
    return save_figure(figure, path)[0]
