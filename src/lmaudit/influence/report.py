"""The files of a scores run: scores.parquet, tokens.jsonl, results.json (top-k per query) and the pictures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmaudit.core.output import dumps, write_table, write_text_atomic
from lmaudit.core.results import MetricRow, envelope
from lmaudit.influence.candidates import CandidateSet
from lmaudit.influence.data import EncodedQuery, TrainingSequence
from lmaudit.influence.estimator import ScoreResult
from lmaudit.influence.factors import Factors
from lmaudit.influence.render import TokenRow, token_html, token_png

SCORES, TOKENS, PICTURE, PAGE = "scores.parquet", "tokens.jsonl", "influence.png", "influence.html"

HOW_TO_READ = (
    "A score is the change in log p(completion | prompt) per unit of up-weighting of a training sequence: "
    "d log p / d eps when that sequence's loss enters the training objective (the mean loss over the N fitting "
    "sequences) with extra weight eps, under the damped Gauss-Newton approximation of the tracked layers. "
    "Positive: the sequence made the completion more likely. Training on one more copy of it among N sequences "
    "changes the log-probability by about score / N. Scores of one run are comparable with each other; the "
    "damping, the strategy and the tracked layers change their scale.")


@dataclass(frozen=True)
class TopEntry:
    query_id: str
    rank: int
    sequence: TrainingSequence
    score: float
    per_layer: dict[str, float]


def layer_column(name: str) -> str:
    return f"layer:{name}"


def top_entries(result: ScoreResult, sequences: Sequence[TrainingSequence], top_k: int) -> list[TopEntry]:
    """Each query's `top_k` most positive sequences (ties: corpus order)."""
    totals = result.total  # (sequences, queries)
    entries = []
    for column, query_id in enumerate(result.query_ids):
        order = np.lexsort((np.arange(len(sequences)), -totals[:, column]))[:top_k]
        for rank, index in enumerate(order, start=1):
            per_layer = {name: float(result.per_layer[index, column, i]) for i, name in enumerate(result.layer_names)}
            entries.append(TopEntry(query_id, rank, sequences[index], float(totals[index, column]), per_layer))
    return entries


def write_scores(path: Path, result: ScoreResult, sequences: Sequence[TrainingSequence],
                 candidates: CandidateSet | None) -> Path:
    """One row per (query, sequence): the score, its rank within the query, the TF-IDF similarity of a
    candidate, and one column per tracked layer (the columns sum to the score)."""
    totals = result.total
    ranks = np.empty_like(totals, dtype=np.int64)
    for column in range(totals.shape[1]):
        order = np.lexsort((np.arange(len(sequences)), -totals[:, column]))
        ranks[order, column] = np.arange(1, len(sequences) + 1)
    rows = []
    for column, query_id in enumerate(result.query_ids):
        similar = candidates.similarity.get(query_id, {}) if candidates else {}
        for index, sequence in enumerate(sequences):
            row: dict[str, Any] = {"query_id": query_id, "sequence_id": sequence.sequence_id,
                                   "document_id": sequence.document_id, "score": float(totals[index, column]),
                                   "rank": int(ranks[index, column]),
                                   "tfidf": similar.get(sequence.sequence_id) if candidates else None}
            for i, name in enumerate(result.layer_names):
                row[layer_column(name)] = float(result.per_layer[index, column, i])
            rows.append(row)
    columns = ["query_id", "sequence_id", "document_id", "score", "rank", "tfidf"] + \
        [layer_column(n) for n in result.layer_names]
    return write_table(rows, path, columns)


def token_rows(model: Any, entries: Sequence[TopEntry], token_values: dict[tuple[str, str], Any],
               queries: Sequence[EncodedQuery]) -> list[TokenRow]:
    by_id = {q.query.query_id: q.query for q in queries}
    rows = []
    for entry in entries:
        values = token_values[(entry.query_id, entry.sequence.sequence_id)]
        tokens = tuple((model.tokenizer.decode([token]), float(value))
                       for token, value in zip(entry.sequence.tokens, values))
        query = by_id[entry.query_id]
        rows.append(TokenRow(entry.query_id, query.prompt, query.completion, entry.rank, entry.sequence.sequence_id,
                             entry.score, tokens))
    return rows


def write_tokens(path: Path, rows: Sequence[TokenRow], entries: Sequence[TopEntry]) -> Path:
    lines = []
    for row, entry in zip(rows, entries):
        lines.append(dumps({"query_id": row.query_id, "rank": row.rank, "sequence_id": row.sequence_id,
                            "document_id": entry.sequence.document_id, "score": row.score,
                            "token_sum": float(sum(v for _, v in row.tokens)),
                            "tokens": [{"id": int(t), "text": text, "score": value}
                                       for t, (text, value) in zip(entry.sequence.tokens, row.tokens)]},
                           indent=None))
    return write_text_atomic(path, "".join(line + "\n" for line in lines))


def write_pictures(folder: Path, rows: Sequence[TokenRow], *, per_query: int = 3, max_queries: int = 4,
                   title: str) -> list[Path]:
    shown, counts = [], {}
    for row in rows:
        if row.query_id not in counts and len(counts) >= max_queries:
            continue
        counts[row.query_id] = counts.get(row.query_id, 0) + 1
        if counts[row.query_id] <= per_query:
            shown.append(row)
    written = [token_png(shown, folder / PICTURE, title=title)] if shown else []
    written.append(token_html(rows, folder / PAGE, title=title, note=HOW_TO_READ))
    return written


def results_envelope(result: ScoreResult, entries: Sequence[TopEntry], queries: Sequence[EncodedQuery],
                     factors: Factors, logprobs: dict[str, float], *, candidates: CandidateSet | None,
                     sequences: int, details: dict[str, Any]) -> dict[str, Any]:
    metrics = []
    for query in queries:
        qid = query.query.query_id
        metrics.append(MetricRow("logprob", logprobs.get(qid), n=query.completion_tokens, task=qid))
    for entry in entries:
        metrics.append(MetricRow("score", entry.score, task=entry.query_id,
                                 group=f"rank={entry.rank} {entry.sequence.sequence_id}"))
    per_query = []
    for query in queries:
        qid = query.query.query_id
        mine = [e for e in entries if e.query_id == qid]
        per_query.append({
            "query_id": qid, "prompt": query.query.prompt, "completion": query.query.completion,
            "completion_tokens": query.completion_tokens, "logprob": logprobs.get(qid),
            "low_rank_error": result.low_rank_errors.get(qid),
            "candidates": len(candidates.per_query.get(qid, [])) if candidates else None,
            "top": [{"rank": e.rank, "sequence_id": e.sequence.sequence_id, "document_id": e.sequence.document_id,
                     "score": e.score, "per_layer": e.per_layer} for e in mine]})
    return envelope("influence", metrics, stage="scores", how_to_read=HOW_TO_READ,
                    strategy=factors.settings.to_dict(), dampings=factors.dampings(),
                    layers=[layer.name for layer in factors.layers], sequences_scored=sequences,
                    factors_fitted_on={"sequences": factors.sequences, "tokens": factors.tokens},
                    candidate_filter=None if candidates is None else {
                        "documents_scanned": candidates.documents_scanned,
                        "documents_kept": candidates.documents_kept, "sequences": len(candidates.sequences)},
                    queries=per_query, files={"scores": SCORES, "tokens": TOKENS, "picture": PICTURE, "page": PAGE},
                    **details)
