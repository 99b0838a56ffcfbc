"""Red-teaming with tense reformulations: up to N attempts per behaviour, stopped at the primary judge's
first jailbreak, every attempt a record in samples.jsonl.

Round i runs attempt i of every behaviour (and every attack) still going, so each stage is one batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from lmaudit.core.errors import ConfigError
from lmaudit.core.results import RESULTS_SCHEMA, aggregate_rows
from lmaudit.models.base import Model
from lmaudit.runner.evaluate import select_samples
from lmaudit.runner.session import ModelRole, RunSession
from lmaudit.safety.attacks import Attack, attempt_seed
from lmaudit.safety.datasets import PromptSet
from lmaudit.safety.engine import (
    AttemptPlan,
    Pipeline,
    TargetSettings,
    judge_labels,
    judge_scoring,
    open_safety_session,
)
from lmaudit.safety.judges import Judge, require_judge_model, uses_model
from lmaudit.safety.metrics import asr_at_k, attack_summary, judge_agreement, parse_failures, score_key

PLOT = "asr_at_k.png"
CHUNK = 64  # attempts per pipeline pass: records reach samples.jsonl at least this often


@dataclass(frozen=True)
class RedTeamConfig:
    attempts: int = 20
    target: TargetSettings = TargetSettings()
    seed: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.attempts <= 0:
            raise ConfigError(f"attempts must be positive, got {self.attempts}")

    def attempts_for(self, attack: Attack) -> int:
        # An unchanged request to a greedy target gets the same answer every time: one attempt says it all.
        return 1 if attack.template is None and self.target.temperature == 0 else self.attempts


@dataclass
class RedTeamResult:
    run_dir: Path
    results: dict[str, Any]
    requests_sent: dict[str, int]  # per role (target, attacker, judge), this invocation
    cache_hits: int
    attempts_run: int
    attempts_resumed: int
    plot: Path | None


def task_name(attack: Attack) -> str:
    return f"redteam_{attack.name}"


def run_redteam(target: Model, prompts: PromptSet, judges: Sequence[Judge], attacks: Sequence[Attack],
                output_dir: str | Path | None = None, *, attacker: Model | None = None,
                judge_model: Model | None = None, config: RedTeamConfig = RedTeamConfig(),
                labels: str | Path | None = None, specs: dict[str, str | None] | None = None,
                cache_path: str | Path | None = None, shared_cache: bool = True, progress: bool = False,
                command: list[str] | None = None, plot: bool = True) -> RedTeamResult:
    """Attack `target` on `prompts`; judges[0] is the primary judge. Resumes an existing `output_dir`."""
    if not attacks:
        raise ConfigError("no attack given; choose from present, past, future")
    if len({a.name for a in attacks}) != len(attacks):
        raise ConfigError(f"an attack is listed twice: {[a.name for a in attacks]}")
    prompts.require(harmful=True)
    specs = specs or {}
    needs_attacker = any(a.template is not None for a in attacks)
    if needs_attacker and attacker is None:
        raise ConfigError("the past/future attacks need an attacker model (--attacker SPEC)")
    require_judge_model(judges, judge_model is not None)
    roles = [ModelRole("target", target, specs.get("target"))]
    if needs_attacker:
        roles.append(ModelRole("attacker", attacker, specs.get("attacker")))  # type: ignore[arg-type]
    if uses_model(judges):
        roles.append(ModelRole("judge", judge_model, specs.get("judge")))  # type: ignore[arg-type]
    samples = select_samples(prompts.samples, config.limit, "category")
    dataset = prompts.config()
    identity = {"dataset": {k: v for k, v in dataset.items() if k != "path"},
                "limit": config.limit, "seed": config.seed, "attempts": config.attempts,
                "target": {"max_tokens": config.target.max_tokens, "temperature": config.target.temperature},
                "attacks": [a.config() for a in attacks], "judges": {j.name: j.config() for j in judges},
                "judge_scoring": judge_scoring(judge_model) if uses_model(judges) else None,
                "primary_judge": judges[0].name}
    session, notes = open_safety_session(output_dir, roles, identity, kind="redteam", cache_path=cache_path,
                                         shared_cache=shared_cache, command=command,
                                         options={"attempts": config.attempts, "limit": config.limit},
                                         dataset=dataset, progress=progress)
    with session:
        pipeline = Pipeline(session, judges, "jailbroken", config.target)
        tasks = {task_name(a) for a in attacks}
        existing = [r for r in session.records() if r.task in tasks]
        resumed = len(existing)
        done = {(r.task, r.sample_id) for r in existing}
        primary = score_key("jailbroken", judges[0].name)
        stopped = {(r.task, r.metadata["behavior"]) for r in existing if r.scores.get(primary) == 1.0}
        run_count = 0
        for attempt in range(1, config.attempts + 1):
            plans = []
            for attack in attacks:
                if attempt > config.attempts_for(attack):
                    continue
                task = task_name(attack)
                for sample in samples:
                    sample_id = f"{sample.id}/attempt-{attempt}"
                    if (task, sample.id) in stopped or (task, sample_id) in done:
                        continue
                    seed = attempt_seed(config.seed, attack.name, sample.id, attempt)
                    plans.append(AttemptPlan(task, sample_id, sample,
                                             {"behavior": sample.id, "attack": attack.name, "attempt": attempt},
                                             attack.attacker_request(sample.data["goal"], seed), seed))
            for start in range(0, len(plans), CHUNK):
                records = pipeline.run(plans[start:start + CHUNK])
                session.append(records)
                run_count += len(records)
                stopped.update((r.task, r.metadata["behavior"]) for r in records if r.scores[primary] == 1.0)
        results = _results(session, samples, judges, attacks, config, dataset)
        if labels is not None:
            results["human_agreement"] = judge_labels(session, pipeline, labels, "jailbroken")
        plot_path = None
        if plot:
            from lmaudit.safety.plot import plot_asr_at_k

            curves = {}
            for attack in attacks:
                for judge in judges:
                    suffix = "" if judge is judges[0] else " (any)"
                    curves[f"{attack.name} / {judge.name}{suffix}"] = results["attacks"][attack.name]["asr_at_k"][
                        judge.name]
            plot_path = plot_asr_at_k(curves, session.run.path / PLOT,
                                      title=f"{specs.get('target') or target.name} on "
                                            f"{prompts.name} (n={len(samples)})")
            results["plot"] = PLOT
        results["notes"] = notes
        session.note(records_written=run_count, records_resumed=resumed)
        results = session.finish(results)
        return RedTeamResult(session.run.path, results, dict(session.sent), sum(session.hits.values()), run_count,
                             resumed, plot_path)


def _results(session: RunSession, samples: list, judges: Sequence[Judge], attacks: Sequence[Attack],
             config: RedTeamConfig, dataset: dict[str, Any]) -> dict[str, Any]:
    names = [j.name for j in judges]
    ids = [s.id for s in samples]
    wanted = set(ids)
    records = session.records()
    out: dict[str, Any] = {
        "schema": RESULTS_SCHEMA, "kind": "redteam", "metrics": [],
        "model": session.manifest["model"], "models": session.manifest["models"],
        "dataset": dataset, "limit": config.limit, "seed": config.seed, "attempts": config.attempts,
        "judges": names, "primary_judge": names[0], "attacks": {}, "comparison": {},
    }
    for attack in attacks:
        task = task_name(attack)
        mine = [r for r in records if r.task == task and r.metadata["behavior"] in wanted]
        attempts = config.attempts_for(attack)
        finished = sum(1 for b in ids if _finished(mine, b, names[0], attempts))
        curves = {j: asr_at_k(mine, j, config.attempts, ids) for j in names}
        out["attacks"][attack.name] = {
            "task": task, "behaviors": len(ids), "behaviors_finished": finished, "complete": finished == len(ids),
            "attempts_allowed": attempts, "attempts_run": len(mine),
            "reformulation_fallbacks": sum(1 for r in mine if r.metadata.get("reformulation_fallback")),
            "asr": attack_summary(mine, names, seed=config.seed) if mine else None,
            "asr_at_k": curves, "parse_failures": parse_failures(mine, names),
            "judge_agreement": judge_agreement(mine, names, "jailbroken"),
        }
        if mine:
            out["metrics"] += [row.to_dict() for row in aggregate_rows(out["attacks"][attack.name]["asr"],
                                                                       task=attack.name)]
    for judge in names:
        out["comparison"][judge] = {}
        for attack in attacks:
            metrics = (out["attacks"][attack.name]["asr"] or {}).get("metrics", {})
            out["comparison"][judge][attack.name] = {
                "paper": metrics.get(f"asr_{judge}"), "any": metrics.get(f"asr_any_{judge}")}
    return out


def _finished(records: list, behaviour: str, primary: str, attempts: int) -> bool:
    mine = [r for r in records if r.metadata["behavior"] == behaviour]
    return any(r.scores[score_key("jailbroken", primary)] == 1.0 for r in mine) or len(mine) >= attempts
