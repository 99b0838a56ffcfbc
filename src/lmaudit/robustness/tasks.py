"""Variant tasks: each variant kind of a letter-choice MCQ task is itself a Task, run by lmaudit.runner.evaluate.

So variants share the response cache and request dedup with every other eval. A variant's prompt is the base
task's own prompt with the question block re-rendered: the part before the block (a subject header, few-shot
examples) is taken from the base task verbatim, and the block is checked to render exactly as the base task
renders it. Hence the `original` variant sends byte-identical requests to the base task, and costs no model call
when the base task ran before with the same model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lmaudit.core.errors import ConfigError
from lmaudit.core.hashing import text_digest
from lmaudit.core.types import LoglikelihoodRequest, LoglikelihoodResult, Request, Response, Sample
from lmaudit.robustness.variants import KINDS, McqItem, labels, make_variants
from lmaudit.tasks.base import ChoiceTask, Task, choice_scores

DEFAULT_PERMUTATIONS = 2


def question_block(question: str, choices: list[str] | tuple[str, ...], option_labels: tuple[str, ...]) -> str:
    """The standard letter layout ('question', one 'L. option' line each, 'Answer:'), as MMLU and mcq use it."""
    options = "".join(f"\n{label}. {choice}" for label, choice in zip(option_labels, choices))
    return f"{question.strip()}{options}\nAnswer:"


def true_false_prompt(question: str, option: str) -> str:
    return (f"{question.strip()}\nProposed answer: {option.strip()}\n"
            "Is the proposed answer the correct answer to the question? Reply Yes or No.\nAnswer:")


def _prompt_prefix(base: ChoiceTask, sample: Sample, item: McqItem) -> str:
    """What the base prompt puts before the question block; a ConfigError if its layout is not the standard one."""
    upper = labels("upper", len(item.choices))
    requests = base.requests(sample)
    context = requests[0].context if requests and isinstance(requests[0], LoglikelihoodRequest) else ""
    block = question_block(item.question, item.choices, upper)
    expected = [LoglikelihoodRequest(context, base.delimiter + label) for label in upper]
    if requests != expected or not context.endswith(block):
        raise ConfigError(f"task {base.name}, sample '{sample.id}': variants need a letter-choice task whose prompt "
                          "ends with 'question / A. option / ... / Answer:' and scores ' A', ' B', ...; this task's "
                          "requests differ (a cloze-style task has no option order to vary)")
    return context[: len(context) - len(block)]


@dataclass
class VariantTask:
    """All variants of one kind for the given source samples of a letter-choice base task."""

    base: ChoiceTask
    kind: str
    sources: list[Sample]
    permutations: int = DEFAULT_PERMUTATIONS
    seed: int = 0
    metrics: tuple[str, ...] = ("acc",)
    name: str = field(init=False)
    group_by: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.base, ChoiceTask):
            raise ConfigError(f"task {getattr(self.base, 'name', self.base)!r} is not a multiple-choice task; "
                              "variants need a letter-choice task such as mmlu or an mcq file")
        if self.kind not in KINDS:
            raise ConfigError(f"unknown variant kind '{self.kind}'; valid: {', '.join(KINDS)}")
        self.name = f"{self.base.name}~{self.kind}"
        self.group_by = tuple(self.base.group_by)
        self._items = {s.id: McqItem.from_sample(s, self.base.name) for s in self.sources}
        self._prefixes = {s.id: _prompt_prefix(self.base, s, self._items[s.id]) for s in self.sources}

    def samples(self) -> list[Sample]:
        return [variant.to_sample() for item in self._items.values()
                for variant in make_variants(item, self.kind, permutations_per_item=self.permutations,
                                             seed=self.seed)]

    def requests(self, sample: Sample) -> list[Request]:
        source = sample.source_id
        option_labels = tuple(sample.data["labels"])
        if self.kind == "truefalse":
            context = true_false_prompt(sample.data["question"], sample.data["choices"][0])
        else:
            context = self._prefixes[source] + question_block(sample.data["question"], sample.data["choices"],
                                                              option_labels)
        return [LoglikelihoodRequest(context, self.base.delimiter + label) for label in option_labels]

    def score(self, sample: Sample, responses: list[Response]) -> dict[str, float]:
        logprobs = [r.logprob for r in responses if isinstance(r, LoglikelihoodResult)]
        return choice_scores(logprobs, sample.data["labels"], int(sample.target), self.metrics)

    def config(self) -> dict[str, Any]:
        ids = "\n".join(s.id for s in self.sources)
        config = {"name": self.name, "kind": "mcq_variants", "variant_kind": self.kind, "base": self.base.config(),
                  "source_items": len(self.sources), "source_ids_sha256": text_digest(ids), "seed": self.seed}
        if self.kind == "permute":
            config["permutations"] = self.permutations
        return config


def check_kinds(kinds: list[str]) -> None:
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ConfigError(f"unknown variant kind(s) {', '.join(unknown)}; valid: {', '.join(KINDS[1:])}")


def variant_tasks(base: Task, sources: list[Sample], kinds: list[str], *, permutations: int = DEFAULT_PERMUTATIONS,
                  seed: int = 0) -> list[VariantTask]:
    """One task per kind; 'original' (the reference every consistency metric compares with) is always first."""
    check_kinds(kinds)
    ordered = ["original", *[k for k in KINDS[1:] if k in kinds]]
    return [VariantTask(base, kind, sources, permutations=permutations, seed=seed)  # type: ignore[arg-type]
            for kind in ordered]
