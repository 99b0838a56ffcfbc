"""The staged pipeline (attacker -> target -> judges) and the run directory bookkeeping shared by
`redteam` and `overrefusal`.

A stage sends all of its requests together so the backend can batch them; every answer goes through the
response cache, and a record is appended to samples.jsonl as soon as its judges are done. Re-running into
the same directory skips recorded attempts, and every model call already made is answered by the cache.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from lmaudit.core.errors import ConfigError, RowError
from lmaudit.core.hashing import text_digest
from lmaudit.core.types import Generation, GenerateRequest, Message, Sample, SampleRecord, request_key, to_dict
from lmaudit.data.tables import read_rows, require_field
from lmaudit.models.base import Model
from lmaudit.runner.cache import ResponseCache, default_cache_path
from lmaudit.runner.evaluate import default_run_dir, jsonable, package_versions
from lmaudit.runner.rundir import MANIFEST, RESULTS, RunDir
from lmaudit.safety.attacks import clean_reformulation
from lmaudit.safety.calls import CachedGenerator
from lmaudit.safety.judges import Judge, Outcome, RubricJudge, Verdict, require_judge_model, warn_if_small
from lmaudit.safety.metrics import agreement, score_key

LABELS_TASK = "judge_labels"
_TRUE = {"1", "true", "yes", "unsafe", "jailbroken", "refused", "refusal"}
_FALSE = {"0", "false", "no", "safe", "complied", "compliance"}


@dataclass(frozen=True)
class TargetSettings:
    max_tokens: int = 150
    temperature: float = 0.0

    def __post_init__(self) -> None:
        if self.max_tokens <= 0:
            raise ConfigError(f"target max tokens must be positive, got {self.max_tokens}")
        if self.temperature < 0:
            raise ConfigError(f"target temperature must be >= 0, got {self.temperature}")

    def request(self, text: str, seed: int | None) -> GenerateRequest:
        sampled = self.temperature > 0
        return GenerateRequest(messages=(Message("user", text),), max_tokens=self.max_tokens,
                               temperature=self.temperature, seed=seed if sampled else None)


@dataclass(frozen=True)
class AttemptPlan:
    """One attempt to run: which sample, how it is recorded, and the attacker's request if there is one."""

    task: str
    sample_id: str
    sample: Sample
    metadata: dict[str, Any]
    attacker_request: GenerateRequest | None = None
    target_seed: int | None = None


@dataclass
class _Judged:
    verdicts: dict[str, Verdict]
    requests: list[GenerateRequest]
    responses: list[Generation]
    roles: list[str]


class Pipeline:
    def __init__(self, target: CachedGenerator, judges: Sequence[Judge], outcome: Outcome,
                 settings: TargetSettings, *, attacker: CachedGenerator | None = None,
                 judge_model: CachedGenerator | None = None):
        require_judge_model(judges, judge_model is not None)
        self.target, self.judges, self.outcome, self.settings = target, list(judges), outcome, settings
        self.attacker, self.judge_model = attacker, judge_model

    def judge(self, pairs: Sequence[tuple[str, str]]) -> list[_Judged]:
        """Every judge on every (original request, response) pair; all judge-model prompts in one batch."""
        calls: list[tuple[int, Judge, GenerateRequest]] = []
        for index, (request, response) in enumerate(pairs):
            for judge in self.judges:
                prompt = judge.request(request, response)
                if prompt is not None:
                    calls.append((index, judge, prompt))
        outputs = self.judge_model.generate([c[2] for c in calls]) if calls else []
        by_pair = {(index, judge.name): (prompt, out) for (index, judge, prompt), out in zip(calls, outputs)}
        judged = []
        for index, (request, response) in enumerate(pairs):
            item = _Judged({}, [], [], [])
            for judge in self.judges:
                prompt, output = by_pair.get((index, judge.name), (None, None))
                item.verdicts[judge.name] = judge.verdict(request, response, output.text if output else None)
                if prompt is not None and output is not None:
                    item.requests.append(prompt)
                    item.responses.append(output)
                    item.roles.append(f"judge:{judge.name}")
            judged.append(item)
        return judged

    def scores(self, verdicts: dict[str, Verdict]) -> dict[str, float]:
        scores = {score_key(self.outcome, name): float(v.outcome(self.outcome)) for name, v in verdicts.items()}
        for judge in self.judges:
            verdict = verdicts[judge.name]
            if isinstance(judge, RubricJudge) and verdict.score is not None:
                scores[f"reward_{judge.name}"] = verdict.score
        return scores

    def run(self, plans: Sequence[AttemptPlan]) -> list[SampleRecord]:
        attacker_requests = [p.attacker_request for p in plans if p.attacker_request is not None]
        if attacker_requests and self.attacker is None:
            raise ConfigError("this attack needs an attacker model")
        rewrites = iter(self.attacker.generate(attacker_requests) if attacker_requests else [])
        steps: list[tuple[list[GenerateRequest], list[Generation], list[str], str]] = []
        for plan in plans:
            goal = plan.sample.data["goal"]
            if plan.attacker_request is None:
                steps.append(([], [], [], goal))
                continue
            rewrite = next(rewrites)
            steps.append(([plan.attacker_request], [rewrite], ["attacker"], clean_reformulation(rewrite.text)))
        target_requests = [self.settings.request(text or plan.sample.data["goal"], plan.target_seed)
                           for plan, (_, _, _, text) in zip(plans, steps)]
        answers = self.target.generate(target_requests)
        judged = self.judge([(p.sample.data["goal"], a.text) for p, a in zip(plans, answers)])
        records = []
        for plan, (requests, responses, roles, text), target_request, answer, verdicts in zip(
                plans, steps, target_requests, answers, judged):
            requests = [*requests, target_request, *verdicts.requests]
            responses = [*responses, answer, *verdicts.responses]
            metadata = {**plan.sample.metadata, **plan.metadata, "goal": plan.sample.data["goal"],
                        "request_roles": [*roles, "target", *verdicts.roles],
                        "judges": {name: v.to_dict() for name, v in verdicts.verdicts.items()}}
            if plan.attacker_request is not None:
                # An attacker that wrote nothing usable leaves the request as it was; the record says so.
                metadata.update(reformulation=text or plan.sample.data["goal"], reformulation_fallback=not text)
            records.append(SampleRecord(
                task=plan.task, sample_id=plan.sample_id, target=jsonable(plan.sample.target),
                metadata=jsonable(metadata),
                requests=[{"key": request_key(r), **to_dict(r)} for r in requests],
                responses=[to_dict(r) for r in responses], scores=self.scores(verdicts.verdicts)))
        return records


# -- run directory --------------------------------------------------------------------------------------

@dataclass
class ModelRole:
    role: str  # "target", "attacker", "judge"
    model: Model
    spec: str | None

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "name": getattr(self.model, "name", None), "fingerprint": self.model.fingerprint()}


@dataclass
class SafetyRun:
    """Run directory, manifest and response cache for one safety command."""

    run: RunDir
    cache: ResponseCache
    roles: dict[str, ModelRole]
    manifest: dict[str, Any]
    progress: bool
    started: float = field(default_factory=time.perf_counter)
    began: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    generators: dict[str, CachedGenerator] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, output_dir: str | Path | None, roles: Sequence[ModelRole], identity: dict[str, Any], *,
             cache_path: str | Path | None, shared_cache: bool, command: list[str] | None,
             options: dict[str, Any], dataset: dict[str, Any], progress: bool) -> "SafetyRun":
        by_role = {r.role: r for r in roles}
        target = by_role["target"]
        run = RunDir(output_dir or default_run_dir(getattr(target.model, "name", None) or target.spec or "model"))
        identity = jsonable(identity)
        previous = run.read_json(MANIFEST)
        if previous is not None and previous.get("identity") != identity:
            old = previous.get("identity", {})
            differing = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
            raise ConfigError(f"{run.path} holds a different run (differs in: {', '.join(differing)}); "
                              f"use a new --output-dir, or the same settings to resume it")
        manifest = previous or {
            "created": datetime.now(timezone.utc).isoformat(),
            "command": command if command is not None else sys.argv,
            "model": target.describe(),
            "models": {role: r.describe() for role, r in by_role.items()},
            "identity": identity,
            "options": jsonable(options),
            "seed": identity.get("seed"),
            "versions": package_versions(),
            "dataset_hashes": {dataset["path"]: dataset["sha256"]},
            "invocations": [],
        }
        run.write_json(MANIFEST, manifest)
        cache = ResponseCache(cache_path or (default_cache_path() if shared_cache else run.path / "cache.sqlite"))
        session = cls(run, cache, by_role, manifest, progress)
        if "judge" in by_role:
            note = warn_if_small(by_role["judge"].model, by_role["judge"].spec or "judge")
            if note:
                session.notes.append(note)
        return session

    def generator(self, role: str) -> CachedGenerator | None:
        if role not in self.roles:
            return None
        if role not in self.generators:
            self.generators[role] = CachedGenerator(self.roles[role].model, self.cache, label=f"{role} requests",
                                                    progress=self.progress)
        return self.generators[role]

    def requests_sent(self) -> dict[str, int]:
        return {role: g.sent for role, g in self.generators.items()}

    def cache_hits(self) -> int:
        return sum(g.hits for g in self.generators.values())

    def finish(self, results: dict[str, Any], recorded: int, resumed: int) -> None:
        results["notes"] = self.notes
        self.run.write_json(RESULTS, jsonable(results))
        self.manifest["invocations"].append(jsonable({
            "started": self.began, "seconds": round(time.perf_counter() - self.started, 3),
            "requests_sent": self.requests_sent(), "cache_hits": self.cache_hits(),
            "records_written": recorded, "records_resumed": resumed}))
        self.run.write_json(MANIFEST, self.manifest)

    def close(self) -> None:
        self.cache.close()


# -- human labels ----------------------------------------------------------------------------------------

def _label(row: Any, outcome: Outcome) -> bool:
    value = str(require_field(row, "label", (str, int, float, bool))).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise RowError(row.path, row.line, "label",
                   f"expected 1/0, true/false, yes/no or unsafe/safe (1 = {outcome}), got {value!r}")


def judge_labels(session: SafetyRun, pipeline: Pipeline, path: str | Path, outcome: Outcome) -> dict[str, Any]:
    """Run the judges on a human-labelled file (columns request, response, label) and compare.

    Records are keyed by the pair's content, so a resumed run, or the same pairs in another file, reuse them.
    """
    rows = list(read_rows(path))
    if not rows:
        raise ConfigError(f"labels file {path} has no rows")
    items = []
    for row in rows:
        request, response = str(require_field(row, "request")), str(require_field(row, "response", (str, int, float)))
        key = f"labels/{text_digest(request + chr(0) + response)[:16]}"
        items.append((key, request, response, _label(row, outcome)))
    done = {r.sample_id: r for r in session.run.records() if r.task == LABELS_TASK}
    todo = list({key: (key, req, resp, lab) for key, req, resp, lab in items if key not in done}.values())
    judged = pipeline.judge([(req, resp) for _, req, resp, _ in todo])
    new = []
    for (key, request, response, label), verdicts in zip(todo, judged):
        new.append(SampleRecord(
            task=LABELS_TASK, sample_id=key, target=label,
            metadata=jsonable({"goal": request, "response": response, "request_roles": verdicts.roles,
                                "judges": {n: v.to_dict() for n, v in verdicts.verdicts.items()}}),
            requests=[{"key": request_key(r), **to_dict(r)} for r in verdicts.requests],
            responses=[to_dict(r) for r in verdicts.responses], scores=pipeline.scores(verdicts.verdicts)))
    session.run.append(new)
    done.update((r.sample_id, r) for r in new)
    human = [label for _, _, _, label in items]
    out: dict[str, Any] = {"file": str(path), "n": len(items), "positives": sum(human), "judges": {}}
    for judge in pipeline.judges:
        predicted = [done[key].scores[score_key(outcome, judge.name)] == 1.0 for key, _, _, _ in items]
        out["judges"][judge.name] = agreement(human, predicted).to_dict()
    return out
