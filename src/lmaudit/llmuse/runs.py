"""The estimate, validate and excess runs: inputs to estimates, tables, figures and results.json.

Each run owns a run directory through `RunSession` (writer lock, manifest, strict results.json in the results
envelope, kind "llmuse"); none of them calls a model, so the session has no roles.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.core.output import write_table
from lmaudit.core.results import MetricRow, envelope
from lmaudit.llmuse.corpus import Documents
from lmaudit.llmuse.matrix import SentenceMatrix, from_rows
from lmaudit.llmuse.mle import MixtureEstimate, estimate
from lmaudit.llmuse.plots import plot_estimates, plot_validation
from lmaudit.llmuse.reference import Reference
from lmaudit.llmuse.text import paragraph_sentences
from lmaudit.llmuse.validation import COLUMNS as VALIDATION_COLUMNS
from lmaudit.llmuse.validation import headline
from lmaudit.llmuse.vocabulary import TABLE_COLUMNS, References, references, sentence_sets

ESTIMATE_COLUMNS = ("group", "period", "alpha", "ci_low", "ci_high", "mle", "bias", "anchor", "target_only_low",
                    "target_only_high", "profile_low", "profile_high", "percentile_low", "percentile_high",
                    "stderr", "stderr_target_only", "reference_share", "n_sentences", "n_documents")


@dataclass(frozen=True)
class EstimateSettings:
    vocabulary: str = "all"
    min_human: int = 5
    min_ai: int = 3
    resamples: int = 1000
    seed: int = 0
    min_sentences: int = 20  # smaller strata are listed as skipped rather than estimated
    # P from the originals of the rewritten paragraphs only, so that their topics weigh equally on P and Q and
    # cancel; with a small Q, P from all human text makes Q's topics look like AI style
    paired: bool = True


def reference_corpora(reference: Reference, settings: EstimateSettings, *, progress: bool = True) -> References:
    paired = reference.sentences("human", paired=settings.paired)
    if not paired:
        raise DataError(f"{reference.path}: no human reference paragraph has a rewrite with its doc_id; use "
                        f"--all-human to take P from all human reference text")
    human = sentence_sets(paired, settings.vocabulary, progress=progress)
    ai = sentence_sets(reference.sentences("ai"), settings.vocabulary, progress=progress)
    return references(human, ai, min_human=settings.min_human, min_ai=settings.min_ai)


def stratum_seed(seed: int, key: str) -> int:
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16)


def estimate_row(group: str, period: str, found: MixtureEstimate, n_documents: int) -> dict[str, Any]:
    return {"group": group, "period": period, "alpha": found.alpha, "ci_low": found.ci.low,
            "ci_high": found.ci.high, "mle": found.mle, "bias": found.bias, "anchor": found.anchor,
            "target_only_low": found.ci_target_only.low, "target_only_high": found.ci_target_only.high,
            "profile_low": found.ci_profile.low, "profile_high": found.ci_profile.high,
            "percentile_low": found.ci_percentile.low, "percentile_high": found.ci_percentile.high,
            "stderr": found.stderr, "stderr_target_only": found.stderr_target_only,
            "reference_share": found.reference_share, "n_sentences": found.n_target, "n_documents": n_documents}


def strata_of_documents(docs: Documents, refs: References, mode: str, *,
                        progress: bool = True) -> list[tuple[str, str, SentenceMatrix, int]]:
    """(group, period, target matrix, documents) for the whole corpus, each group, each period, each pair."""
    sentences, owners = paragraph_sentences(docs.texts)
    if not sentences:
        raise DataError(f"{docs.source}: no sentences of two or more words in the target")
    matrix = refs.matrix(sentence_sets(sentences, mode, progress=progress))
    owners_arr = np.asarray(owners)
    keys: list[tuple[str, str]] = [("all", "all")]
    groups = sorted({g for g in docs.groups if g is not None})
    periods = sorted({p for p in docs.periods if p is not None})
    keys += [(g, "all") for g in groups] + [("all", p) for p in periods]
    if groups and periods:
        keys += sorted({(g, p) for g, p in zip(docs.groups, docs.periods)})
    strata = []
    for group, period in keys:
        chosen_docs = [i for i in range(len(docs)) if group in ("all", docs.groups[i])
                       and period in ("all", docs.periods[i])]
        sentence_rows = np.flatnonzero(np.isin(owners_arr, chosen_docs))
        strata.append((group, period, matrix.select(sentence_rows), len(chosen_docs)))
    return strata


def strata_of_groups(groups: dict[str, SentenceMatrix],
                     documents: dict[str, int]) -> list[tuple[str, str, SentenceMatrix, int]]:
    """Corpus-scale counts per group, and their union."""
    union = from_rows(sparse.vstack([m.rows[m.owners] for m in groups.values()]))
    strata = [("all", "all", union, sum(documents.values()))]
    if len(groups) > 1 or "all" not in groups:
        strata += [(g, "all", m, documents[g]) for g, m in groups.items()]
    return strata


def estimate_strata(refs: References, strata: Sequence[tuple[str, str, SentenceMatrix, int]],
                    settings: EstimateSettings, *, requested: Sequence[str] = ()) -> tuple[list[dict], list[dict]]:
    """Estimates per stratum, and the strata skipped for having fewer than min_sentences sentences."""
    rows, skipped = [], []
    for group, period, matrix, n_docs in strata:
        if matrix.n < settings.min_sentences:
            if group in requested:
                raise DataError(f"group {group} has {matrix.n} sentences, fewer than --min-sentences "
                                f"{settings.min_sentences}")
            skipped.append({"group": group, "period": period, "n_sentences": matrix.n})
            continue
        found = estimate(refs.against(matrix), resamples=settings.resamples,
                         seed=stratum_seed(settings.seed, f"{group}|{period}"))
        rows.append(estimate_row(group, period, found, n_docs))
    return rows, skipped


def metric_rows(rows: Sequence[dict]) -> list[MetricRow]:
    out = []
    for r in rows:
        label = None if (r["group"], r["period"]) == ("all", "all") else ",".join(
            f"{k}={r[k]}" for k in ("group", "period") if r[k] != "all")
        out.append(MetricRow("llm_share", r["alpha"], r["stderr"], (r["ci_low"], r["ci_high"]), r["n_sentences"],
                             "llmuse", label))
        out.append(MetricRow("llm_share_mle", r["mle"], None, (r["profile_low"], r["profile_high"]),
                             r["n_sentences"], "llmuse", label))
        out.append(MetricRow("anchor_midpoint", r["anchor"], r["stderr_target_only"],
                             (r["target_only_low"], r["target_only_high"]), r["n_sentences"], "llmuse", label))
    return out


def reference_details(refs: References, settings: EstimateSettings, source: str) -> dict[str, Any]:
    return {"reference": source, "vocabulary": settings.vocabulary, "vocabulary_size": len(refs.table.words),
            "human_sentences": refs.human.n, "ai_sentences": refs.ai.n, "min_human": settings.min_human,
            "min_ai": settings.min_ai, "smoothing": refs.table.smoothing, "paired": settings.paired}


def open_session(output_dir: str | Path | None, command: str, identity: dict[str, Any]) -> Any:
    from lmaudit.runner import RunSession

    return RunSession.open(output_dir, kind="llmuse", identity={"command": command, **identity}, roles=[],
                           name=f"llmuse-{command}", progress=False)


@dataclass
class EstimateRun:
    run_dir: Path
    rows: list[dict]
    skipped: list[dict]
    results: dict[str, Any]


def run_estimate(refs: References, strata: Sequence[tuple[str, str, SentenceMatrix, int]],
                 settings: EstimateSettings, *, output_dir: str | Path | None, identity: dict[str, Any],
                 reference_source: str, requested: Sequence[str] = ()) -> EstimateRun:
    with open_session(output_dir, "estimate", {**identity, "settings": asdict(settings)}) as session:
        folder = session.run.path
        write_table(refs.table.rows(), folder / "vocabulary.csv", TABLE_COLUMNS)
        rows, skipped = estimate_strata(refs, strata, settings, requested=requested)
        if not rows:
            raise DataError(f"every stratum has fewer than {settings.min_sentences} sentences; nothing to estimate")
        write_table(rows, folder / "estimates.csv", ESTIMATE_COLUMNS)
        plotted = [r for r in rows if (r["group"], r["period"]) != ("all", "all")] or rows
        plot_estimates(plotted, folder / "estimates.png")
        results = session.finish(envelope("llmuse", metric_rows(rows), command="estimate", strata=rows,
                                          skipped=skipped, settings=asdict(settings),
                                          references=reference_details(refs, settings, reference_source)))
        return EstimateRun(folder, rows, skipped, results)


def validation_metrics(rows: Sequence[dict]) -> list[MetricRow]:
    out = []
    for r in rows:
        group = f"share={r['share']:g}"
        out.append(MetricRow("error", r["error"], r["sd_alpha"] / max(r["n_mixtures"], 1) ** 0.5, None,
                             r["n_mixtures"], "llmuse", group))
        out.append(MetricRow("coverage", r["coverage"], None, None, r["n_mixtures"], "llmuse", group))
        out.append(MetricRow("anchor_error", r["anchor_error"], None, None, r["n_mixtures"], "llmuse", group))
        out.append(MetricRow("anchor_coverage", r["anchor_coverage"], None, None, r["n_mixtures"], "llmuse", group))
    top = headline(rows)
    out += [MetricRow(name, top[name], task="llmuse") for name in ("max_abs_error", "bias_at_zero",
                                                                    "anchor_max_abs_error", "anchor_bias_at_zero")
            if top[name] is not None]
    return out


def run_validation(rows_of: Any, *, output_dir: str | Path | None, identity: dict[str, Any],
                   details: dict[str, Any]) -> tuple[Path, list[dict], dict[str, Any]]:
    """`rows_of()` computes the per-share rows; written as validation.csv/.png and results.json."""
    with open_session(output_dir, "validate", identity) as session:
        rows = rows_of()
        if not rows:
            raise ConfigError("no shares to validate")
        folder = session.run.path
        write_table(rows, folder / "validation.csv", VALIDATION_COLUMNS)
        plot_validation(rows, folder / "validation.png")
        results = session.finish(envelope("llmuse", validation_metrics(rows), command="validate", shares=rows,
                                          headline=headline(rows), **details))
        return folder, rows, results


EXCESS_COLUMNS = ("group", "word", "documents", "frequency", "projected", "gap", "gap_low", "gap_high", "ratio",
                  "excess")


def run_excess(reference: dict[str, list[frozenset[str]]], target: dict[str, list[frozenset[str]]],
               settings: Any, *, earlier: dict[str, list[frozenset[str]]] | None = None, gap: float = 1.0,
               periods: Sequence[str] = (), output_dir: str | Path | None, identity: dict[str, Any],
               top: int = 100, markers: Sequence[str] | None = None) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Excess vocabulary per group (documents as word sets, keyed by group; "all" is the whole corpus)."""
    from lmaudit.llmuse.excess import excess_vocabulary
    from lmaudit.llmuse.plots import plot_excess

    with open_session(output_dir, "excess", {**identity, "settings": asdict(settings),
                                             "markers": sorted(markers) if markers else None}) as session:
        folder = session.run.path
        found = {}
        for group in target:
            if group not in reference or (earlier is not None and group not in earlier):
                raise DataError(f"group {group} has target documents but no reference documents")
            found[group] = excess_vocabulary(reference[group], target[group], settings,
                                             earlier=None if earlier is None else earlier[group], gap=gap,
                                             periods=periods, markers=markers)
        table = [{"group": group, **{k: v for k, v in asdict(w).items() if k != "gap_ci"},
                  "gap_low": w.gap_ci.low, "gap_high": w.gap_ci.high}
                 for group, result in found.items() for w in result.words[:top]]
        write_table(table, folder / "excess_words.csv", EXCESS_COLUMNS)
        overall = found.get("all") or next(iter(found.values()))
        plot_excess([asdict(w) for w in overall.words], folder / "excess.png")
        metrics = []
        for group, result in found.items():
            label = None if group == "all" else f"group={group}"
            metrics.append(MetricRow("lower_bound_share", result.lower_bound, None, (result.ci.low, result.ci.high),
                                     result.n_target, "llmuse", label))
            metrics.append(MetricRow("excess_words", float(sum(w.excess for w in result.words)), None, None,
                                     len(result.words), "llmuse", label))
        results = session.finish(envelope("llmuse", metrics, command="excess", settings=asdict(settings),
                                          groups={g: r.summary() for g, r in found.items()}))
        return folder, found, results
