"""The staged pipeline (attacker -> target -> judges) that `redteam` and `overrefusal` share.

A stage sends all of its requests together so the backend can batch them; every call goes through the run's
RunSession (the one runner: response cache, chunking, manifest), and a record is appended to samples.jsonl as
soon as its judges are done. Re-running into the same directory skips recorded attempts, and every model call
already made is answered by the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from lmaudit.core.errors import ConfigError, RowError
from lmaudit.core.hashing import text_digest
from lmaudit.core.types import (
    Generation,
    GenerateRequest,
    LoglikelihoodRequest,
    Message,
    Request,
    Response,
    Sample,
    SampleRecord,
    request_key,
    to_dict,
)
from lmaudit.data.tables import read_rows, require_field
from lmaudit.models.base import Model, WhiteBoxModel, require_white_box
from lmaudit.runner.session import ModelRole, RunSession, jsonable
from lmaudit.safety.attacks import clean_reformulation
from lmaudit.safety.judges import Judge, Outcome, RubricJudge, Verdict, require_judge_model, warn_if_small
from lmaudit.safety.metrics import agreement, score_key

LABELS_TASK = "judge_labels"
JudgeScoring = Literal["logprobs", "text"]
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
    requests: list[Request]
    responses: list[Response]
    roles: list[str]


def judge_scoring(judge_model: Model | None) -> JudgeScoring:
    """How LLM judges answer: by the log-probabilities of their options where the judge model has them (a
    white-box model), else in free text that the parsers read."""
    return "logprobs" if isinstance(judge_model, WhiteBoxModel) else "text"


class Pipeline:
    """Attacker, target and judges of one run; each stage is one `session.call` under its role."""

    def __init__(self, session: RunSession, judges: Sequence[Judge], outcome: Outcome, settings: TargetSettings,
                 *, scoring: JudgeScoring | None = None):
        require_judge_model(judges, "judge" in session.roles)
        self.session, self.judges, self.outcome, self.settings = session, list(judges), outcome, settings
        judge = session.roles.get("judge")
        self.scoring = scoring or judge_scoring(judge.model if judge else None)

    def _generate(self, role: str, requests: Sequence[GenerateRequest]) -> list[Generation]:
        return self.session.call(role, requests, label=f"{role} requests")  # type: ignore[return-value]

    def judge(self, pairs: Sequence[tuple[str, str]]) -> list[_Judged]:
        """Every judge on every (original request, response) pair; all judge-model prompts in one batch."""
        calls: list[tuple[int, Judge, GenerateRequest]] = []
        for index, (request, response) in enumerate(pairs):
            for judge in self.judges:
                prompt = judge.request(request, response)
                if prompt is not None:
                    calls.append((index, judge, prompt))
        answers = self._answers(calls)
        judged = []
        for index, (request, response) in enumerate(pairs):
            item = _Judged({}, [], [], [])
            for judge in self.judges:
                asked, replies, output = answers.get((index, judge.name), ([], [], None))
                item.verdicts[judge.name] = judge.verdict(request, response, output)
                item.requests += asked
                item.responses += replies
                item.roles += [f"judge:{judge.name}"] * len(asked)
            judged.append(item)
        return judged

    def _answers(self, calls: list[tuple[int, Judge, GenerateRequest]]) -> dict[tuple[int, str], tuple]:
        """(requests sent, responses, the answer as text) per (pair, judge).

        In "logprobs" scoring each option is a log-likelihood request after the judge's chat prompt, and the
        answer is the most likely option, so it is always readable; in "text" scoring the judge generates.
        """
        if not calls:
            return {}
        if self.scoring == "text":
            outputs = self._generate("judge", [prompt for _, _, prompt in calls])
            return {(index, judge.name): ([prompt], [out], out.text)
                    for (index, judge, prompt), out in zip(calls, outputs)}
        model = require_white_box(self.session.roles["judge"].model, "judging by log-probabilities")
        asked = [[LoglikelihoodRequest(model.chat_prompt(prompt.messages or ()), option) for option in judge.options()]
                 for _, judge, prompt in calls]
        flat = self.session.call("judge", [r for group in asked for r in group], label="judge requests")
        out, start = {}, 0
        for (index, judge, _), group in zip(calls, asked):
            replies = flat[start:start + len(group)]
            start += len(group)
            best = max(range(len(group)), key=lambda i: replies[i].logprob)  # type: ignore[union-attr]
            out[(index, judge.name)] = (group, replies, judge.options()[best])
        return out

    def scores(self, verdicts: dict[str, Verdict]) -> dict[str, float]:
        """A missing response has no score (it is neither a refusal nor a jailbreak); an unreadable judge
        answer scores 0 and is counted in the results' parse failures."""
        scores = {score_key(self.outcome, name): float(v.outcome(self.outcome))
                  for name, v in verdicts.items() if not v.missing}
        for judge in self.judges:
            verdict = verdicts[judge.name]
            if isinstance(judge, RubricJudge) and verdict.score is not None:
                scores[f"reward_{judge.name}"] = verdict.score
        return scores

    def run(self, plans: Sequence[AttemptPlan]) -> list[SampleRecord]:
        attacker_requests = [p.attacker_request for p in plans if p.attacker_request is not None]
        if attacker_requests and "attacker" not in self.session.roles:
            raise ConfigError("this attack needs an attacker model")
        rewrites = iter(self._generate("attacker", attacker_requests) if attacker_requests else [])
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
        answers = self._generate("target", target_requests)
        judged = self.judge([(p.sample.data["goal"], a.text) for p, a in zip(plans, answers)])
        records = []
        for plan, (requests, responses, roles, text), target_request, answer, verdicts in zip(
                plans, steps, target_requests, answers, judged):
            requests = [*requests, target_request, *verdicts.requests]
            responses = [*responses, answer, *verdicts.responses]
            metadata = {**plan.sample.metadata, **plan.metadata, "goal": plan.sample.data["goal"]}
            if plan.attacker_request is not None:
                # An attacker that wrote nothing usable leaves the request as it was; the record says so.
                metadata.update(reformulation=text or plan.sample.data["goal"], reformulation_fallback=not text)
            records.append(SampleRecord(
                task=plan.task, sample_id=plan.sample_id, target=jsonable(plan.sample.target),
                metadata=jsonable(metadata),
                requests=[{"key": request_key(r), **to_dict(r)} for r in requests],
                responses=[to_dict(r) for r in responses], scores=self.scores(verdicts.verdicts),
                roles=[*roles, "target", *verdicts.roles],
                judges=jsonable({name: v.to_dict() for name, v in verdicts.verdicts.items()})))
        return records


# -- run directory --------------------------------------------------------------------------------------

def open_safety_session(output_dir: str | Path | None, roles: Sequence[ModelRole], identity: dict[str, Any], *,
                        kind: str, cache_path: str | Path | None, shared_cache: bool, command: list[str] | None,
                        options: dict[str, Any], dataset: dict[str, Any], progress: bool) -> tuple[RunSession,
                                                                                                   list[str]]:
    """The run's session, and the notes results.json carries (a judge too small to trust)."""
    session = RunSession.open(output_dir, kind=kind, identity=identity, roles=roles, command=command,
                              options=options, dataset_hashes={dataset["path"]: dataset["sha256"]},
                              cache_path=cache_path, shared_cache=shared_cache, progress=progress)
    notes = []
    if "judge" in session.roles:
        judge = session.roles["judge"]
        note = warn_if_small(judge.model, judge.spec or "judge")
        if note:
            notes.append(note)
    return session, notes


# -- human labels ----------------------------------------------------------------------------------------

def _label(row: Any, outcome: Outcome) -> bool:
    value = str(require_field(row, "label", (str, int, float, bool))).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise RowError(row.path, row.line, "label",
                   f"expected 1/0, true/false, yes/no or unsafe/safe (1 = {outcome}), got {value!r}")


def judge_labels(session: RunSession, pipeline: Pipeline, path: str | Path, outcome: Outcome) -> dict[str, Any]:
    """Run the judges on a human-labelled file (columns request, response, label) and compare.

    A null response (JailbreakBench's artifacts have them) is judged as missing. Agreement is computed over the
    pairs a judge decided; pairs with a missing response or an unreadable judge answer are left out of it and
    counted. Records are keyed by the pair's content, so a resumed run, or the same pairs in another file,
    reuse them.
    """
    rows = list(read_rows(path))
    if not rows:
        raise ConfigError(f"labels file {path} has no rows")
    items = []
    for row in rows:
        request = str(require_field(row, "request"))
        if "response" not in row.values:
            require_field(row, "response")  # the clear error for a missing column
        raw = row.values["response"]
        if raw is not None and not isinstance(raw, (str, int, float)):
            raise RowError(row.path, row.line, "response", f"expected text or null, got {raw!r}")
        response = None if raw is None else str(raw)
        content = request + "\0" + ("\1missing" if response is None else response)
        key = f"labels/{text_digest(content)[:16]}"
        items.append((key, request, response, _label(row, outcome)))
    done = {r.sample_id: r for r in session.records() if r.task == LABELS_TASK}
    todo = list({key: (key, req, resp, lab) for key, req, resp, lab in items if key not in done}.values())
    judged = pipeline.judge([(req, resp) for _, req, resp, _ in todo])
    new = []
    for (key, request, response, label), verdicts in zip(todo, judged):
        new.append(SampleRecord(
            task=LABELS_TASK, sample_id=key, target=label,
            metadata=jsonable({"goal": request, "response": response}),
            requests=[{"key": request_key(r), **to_dict(r)} for r in verdicts.requests],
            responses=[to_dict(r) for r in verdicts.responses], scores=pipeline.scores(verdicts.verdicts),
            roles=verdicts.roles, judges=jsonable({n: v.to_dict() for n, v in verdicts.verdicts.items()})))
    session.append(new)
    done.update((r.sample_id, r) for r in new)
    out: dict[str, Any] = {"file": str(path), "n": len(items), "positives": sum(label for *_, label in items),
                           "judges": {}}
    out["missing_responses"] = sum(1 for _, _, response, _ in items if response is None)
    out["parse_failures"] = {}
    for judge in pipeline.judges:
        decided = [(label, done[key].scores[score_key(outcome, judge.name)] == 1.0) for key, _, _, label in items
                   if (done[key].judges or {})[judge.name]["parsed"] and not done[key].judges[judge.name]["missing"]]
        out["parse_failures"][judge.name] = sum(1 for key, _, response, _ in items if response is not None
                                                and not done[key].judges[judge.name]["parsed"])
        out["judges"][judge.name] = {**agreement([h for h, _ in decided], [p for _, p in decided]).to_dict(),
                                     "excluded": len(items) - len(decided)}
    return out
