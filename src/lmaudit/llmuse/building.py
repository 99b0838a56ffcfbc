"""`build-reference` as a run: a RunSession around the two-stage rewrite, and results.json in the envelope."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lmaudit.core.hashing import file_digest
from lmaudit.core.results import MetricRow, envelope
from lmaudit.llmuse.reference import Reference, SplitPlan, build_reference, read_documents
from lmaudit.llmuse.rewrite import Prompts, RewriteSettings


@dataclass
class ReferenceRun:
    run_dir: Path
    reference: Reference
    results: dict[str, Any]
    requests_sent: int


def reference_metrics(reference: Reference) -> list[MetricRow]:
    rows = []
    for source in ("human", "ai"):
        for split in ("reference", "heldout"):
            rows.append(MetricRow("paragraphs", float(len(reference.texts(source, split))), task="llmuse",
                                  group=f"{source}={split}"))
            rows.append(MetricRow("sentences", float(len(reference.sentences(source, split))), task="llmuse",
                                  group=f"{source}={split}"))
    return rows


def run_build_reference(model: Any, human: str | Path, *, text_column: str, id_column: str | None = None,
                        output_dir: str | Path | None = None, plan: SplitPlan = SplitPlan(),
                        prompts: Prompts = Prompts(), settings: RewriteSettings = RewriteSettings(),
                        model_spec: str | None = None, cache_path: str | Path | None = None,
                        shared_cache: bool = True, progress: bool = True) -> ReferenceRun:
    """Split `human` (a table file), rewrite the planned paragraphs with `model`, write reference.jsonl."""
    from lmaudit.runner import ModelRole, RunSession

    prompts.check()
    settings.check()
    documents = read_documents(human, text_column, id_column)
    plan.check(len(documents))
    identity = {"command": "build-reference", "human": file_digest(human), "text_column": text_column,
                "id_column": id_column, "plan": asdict(plan), "prompts": prompts.fingerprint(),
                "settings": asdict(settings)}
    with RunSession.open(output_dir, kind="llmuse", identity=identity,
                         roles=[ModelRole("target", model, model_spec)], options={"prompts": asdict(prompts)},
                         dataset_hashes={str(human): identity["human"]}, cache_path=cache_path,
                         shared_cache=shared_cache, progress=progress, name="llmuse-reference") as session:
        reference = build_reference(session, documents, plan, prompts, settings)
        results = session.finish(envelope("llmuse", reference_metrics(reference), command="build-reference",
                                          reference_file=reference.path, counts=reference.counts(),
                                          plan=asdict(plan), settings=asdict(settings)))
        sent = sum(session.sent.values())
        return ReferenceRun(session.run.path, reference, results, sent)
