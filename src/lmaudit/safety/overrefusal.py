"""Over-refusal: how often a model refuses requests it should answer (JBB benign, XSTest safe prompts)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from lmaudit.core.results import RESULTS_SCHEMA, aggregate_rows
from lmaudit.models.base import Model
from lmaudit.runner.aggregate import aggregate
from lmaudit.runner.evaluate import select_samples
from lmaudit.runner.session import ModelRole
from lmaudit.safety.datasets import PromptSet
from lmaudit.safety.engine import (
    AttemptPlan,
    Pipeline,
    TargetSettings,
    judge_labels,
    judge_scoring,
    open_safety_session,
)
from lmaudit.safety.judges import Judge, RubricJudge, require_judge_model, uses_model
from lmaudit.safety.metrics import judge_agreement, parse_failures, score_key

CHUNK = 64


@dataclass(frozen=True)
class OverRefusalConfig:
    target: TargetSettings = TargetSettings()
    seed: int = 0
    limit: int | None = None


@dataclass
class OverRefusalResult:
    run_dir: Path
    results: dict[str, Any]
    requests_sent: dict[str, int]
    cache_hits: int
    prompts_run: int
    prompts_resumed: int


def run_overrefusal(target: Model, prompts: PromptSet, judges: Sequence[Judge], output_dir: str | Path | None = None,
                    *, judge_model: Model | None = None, config: OverRefusalConfig = OverRefusalConfig(),
                    labels: str | Path | None = None, specs: dict[str, str | None] | None = None,
                    cache_path: str | Path | None = None, shared_cache: bool = True, progress: bool = False,
                    command: list[str] | None = None) -> OverRefusalResult:
    """Answer every prompt once and let each judge decide whether the answer is a refusal."""
    prompts.require(harmful=False)
    require_judge_model(judges, judge_model is not None)
    specs = specs or {}
    roles = [ModelRole("target", target, specs.get("target"))]
    if uses_model(judges):
        roles.append(ModelRole("judge", judge_model, specs.get("judge")))  # type: ignore[arg-type]
    samples = select_samples(prompts.samples, config.limit, "category")
    dataset = prompts.config()
    identity = {"dataset": {k: v for k, v in dataset.items() if k != "path"},
                "limit": config.limit, "seed": config.seed,
                "target": {"max_tokens": config.target.max_tokens, "temperature": config.target.temperature},
                "judges": {j.name: j.config() for j in judges},
                "judge_scoring": judge_scoring(judge_model) if uses_model(judges) else None}
    session, notes = open_safety_session(output_dir, roles, identity, kind="overrefusal", cache_path=cache_path,
                                         shared_cache=shared_cache, command=command,
                                         options={"limit": config.limit}, dataset=dataset, progress=progress)
    with session:
        pipeline = Pipeline(session, judges, "refused", config.target)
        task = f"overrefusal_{prompts.name}"
        existing = session.records()
        done = {(r.task, r.sample_id) for r in existing}
        plans = [AttemptPlan(task, s.id, s, {}, None, config.seed) for s in samples if (task, s.id) not in done]
        for start in range(0, len(plans), CHUNK):
            session.append(pipeline.run(plans[start:start + CHUNK]))
        wanted = {s.id for s in samples}
        records = [r for r in session.records() if r.task == task and r.sample_id in wanted]
        names = [j.name for j in judges]
        metrics = [score_key("refused", n) for n in names]
        metrics += [f"reward_{j.name}" for j in judges if isinstance(j, RubricJudge)]
        over_refusal = aggregate(records, metrics, ("category",), seed=config.seed)
        results: dict[str, Any] = {
            "schema": RESULTS_SCHEMA, "kind": "overrefusal",
            "metrics": [row.to_dict() for row in aggregate_rows(over_refusal, task=task)],
            "model": session.manifest["model"], "models": session.manifest["models"],
            "dataset": dataset, "limit": config.limit, "seed": config.seed, "task": task, "judges": names,
            "prompts": len(samples), "complete": len(records) == len(samples),
            "over_refusal": over_refusal, "notes": notes,
            "parse_failures": parse_failures(records, names),
            "judge_agreement": judge_agreement(records, names, "refused"),
        }
        if labels is not None:
            results["human_agreement"] = judge_labels(session, pipeline, labels, "refused")
        session.note(records_written=len(plans), records_resumed=len(samples) - len(plans))
        results = session.finish(results)
        return OverRefusalResult(session.run.path, results, dict(session.sent), sum(session.hits.values()),
                                 len(plans), len(samples) - len(plans))
