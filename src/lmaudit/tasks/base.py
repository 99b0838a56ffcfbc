"""The Task contract, the two generic task shapes (choice and generation) and the task registry."""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lmaudit.core.errors import ConfigError, UnknownNameError
from lmaudit.core.types import (
    Generation,
    GenerateRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Message,
    Request,
    Response,
    Sample,
)


@runtime_checkable
class Task(Protocol):
    """Dataset + prompt + request builder + scorer. Scores are aggregated by mean over samples."""

    name: str
    metrics: tuple[str, ...]
    group_by: tuple[str, ...]  # metadata keys that get per-group breakdowns

    def samples(self) -> list[Sample]: ...

    def requests(self, sample: Sample) -> list[Request]: ...

    def score(self, sample: Sample, responses: list[Response]) -> dict[str, float]: ...

    def config(self) -> dict[str, Any]:
        """Options and data files (with digests) that define the task, for the run manifest.

        Pure: it must not depend on whether samples() has run (a resumed run compares it before loading).
        """
        ...


@dataclass(frozen=True)
class Scored:
    """What scoring one sample gives: its scores, plus a payload the runner files in the record's typed fields."""

    scores: dict[str, float]
    execution: Any = None  # a sandbox's per-program outcomes (code evals)


@runtime_checkable
class BatchScoringTask(Task, Protocol):
    """A task that scores many samples at once (code execution runs programs in parallel)."""

    def score_batch(self, items: Sequence[tuple[Sample, Sequence[Response]]]) -> list[Scored]: ...


def choice_scores(logprobs: Sequence[float], choices: Sequence[str], gold: int,
                  metrics: Sequence[str]) -> dict[str, float]:
    """acc (raw log-likelihood), acc_norm (per character) and acc_bytes (per UTF-8 byte), as lm-eval defines them."""
    lls = np.asarray(logprobs, dtype=np.float64)
    scores: dict[str, float] = {}
    if "acc" in metrics:
        scores["acc"] = float(int(np.argmax(lls)) == gold)
    if "acc_norm" in metrics:
        scores["acc_norm"] = float(int(np.argmax(lls / np.array([len(c) for c in choices], float))) == gold)
    if "acc_bytes" in metrics:
        scores["acc_bytes"] = float(int(np.argmax(lls / np.array([len(c.encode()) for c in choices], float))) == gold)
    return scores


@dataclass
class ChoiceTask:
    """A multiple-choice task scored by the log-likelihood of each choice after the context.

    `load` gives samples whose `data` holds what `context` needs and whose `target` is the gold index;
    `choices(sample)` gives the choice texts; each is scored as `delimiter + choice`.
    """

    name: str
    load: Callable[[], list[Sample]]
    context: Callable[[Sample], str]
    choices: Callable[[Sample], list[str]]
    metrics: tuple[str, ...] = ("acc",)
    group_by: tuple[str, ...] = ()
    delimiter: str = " "
    options: dict[str, Any] = field(default_factory=dict)

    def samples(self) -> list[Sample]:
        return self.load()

    def requests(self, sample: Sample) -> list[Request]:
        context = self.context(sample)
        return [LoglikelihoodRequest(context, self.delimiter + choice) for choice in self.choices(sample)]

    def score(self, sample: Sample, responses: list[Response]) -> dict[str, float]:
        logprobs = [r.logprob for r in responses if isinstance(r, LoglikelihoodResult)]
        return choice_scores(logprobs, self.choices(sample), int(sample.target), self.metrics)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "choice", "delimiter": self.delimiter, **self.options}


def normalize_answer(text: str) -> str:
    return " ".join(text.strip().lower().split())


@dataclass
class GenerateTask:
    """A generation task: prompt in, text out, scored by exact match and containment of the target.

    `answer_pattern` (a regex with one group) extracts the answer from the output before matching.
    """

    name: str
    load: Callable[[], list[Sample]]
    prompt: Callable[[Sample], str]
    chat: bool = False
    max_tokens: int = 128
    stop: tuple[str, ...] = ()
    answer_pattern: str | None = None
    group_by: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ("exact_match", "contains")
    options: dict[str, Any] = field(default_factory=dict)

    def samples(self) -> list[Sample]:
        return self.load()

    def requests(self, sample: Sample) -> list[Request]:
        text = self.prompt(sample)
        if self.chat:
            return [GenerateRequest(messages=(Message("user", text),), max_tokens=self.max_tokens, stop=self.stop)]
        return [GenerateRequest(prompt=text, max_tokens=self.max_tokens, stop=self.stop)]

    def extract(self, output: str) -> str:
        if self.answer_pattern:
            found = re.search(self.answer_pattern, output)
            return found.group(1) if found else ""
        return output

    def score(self, sample: Sample, responses: list[Response]) -> dict[str, float]:
        output = responses[0].text if isinstance(responses[0], Generation) else ""
        answer = normalize_answer(self.extract(output))
        targets = sample.target if isinstance(sample.target, list) else [sample.target]
        targets = [normalize_answer(str(t)) for t in targets]
        return {
            "exact_match": float(answer in targets),
            "contains": float(any(t and t in normalize_answer(output) for t in targets)),
        }

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "generate", "chat": self.chat, "max_tokens": self.max_tokens,
                "stop": list(self.stop), "answer_pattern": self.answer_pattern, **self.options}


# -- registry ---------------------------------------------------------------------------------------

TaskFactory = Callable[..., Task]


@dataclass(frozen=True)
class TaskEntry:
    factory: TaskFactory
    description: str
    family: str | None = None  # e.g. all mmlu_<subject> tasks list as one family


_REGISTRY: dict[str, TaskEntry] = {}


def register_task(name: str, factory: TaskFactory, description: str, family: str | None = None) -> None:
    _REGISTRY[name] = TaskEntry(factory, description, family)


def task_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def task_entries() -> dict[str, TaskEntry]:
    _load_builtins()
    return dict(_REGISTRY)


def get_task(name: str, **options: Any) -> Task:
    """Build a registered task; options the factory does not take (e.g. num_fewshot) are an error."""
    _load_builtins()
    if name not in _REGISTRY:
        raise UnknownNameError("task", name, list(_REGISTRY))
    factory = _REGISTRY[name].factory
    try:
        return factory(**options)
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise ConfigError(f"task '{name}' does not take option(s) {sorted(options)}: {exc}") from exc
        raise


_PLUGINS_LOADED = False


def _load_builtins() -> None:
    """Every installed package's tasks (entry point group `lmaudit.tasks`: the core's, then capabilities'), once."""
    global _PLUGINS_LOADED
    if not _PLUGINS_LOADED:
        _PLUGINS_LOADED = True
        for entry in importlib.metadata.entry_points(group="lmaudit.tasks"):
            entry.load()()
