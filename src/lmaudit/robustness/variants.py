"""Variants of one multiple-choice item, each remembering how its options map back to the source item.

A variant shows some of the source options (possibly a "none of the above" option) in some order under some
labels. `option_map[i]` is the source option shown at position i, so the answer a model gives on any variant
translates back to a source option: that is what consistency is measured on.

Kinds:
- original: the item as the task shows it (A, B, C, ... in source order); the reference for consistency;
- rotate: every other cyclic shift of the options;
- permute: k distinct random orders (seeded per item), none the identity;
- relabel: the source order under the labels 1, 2, 3, ... and a, b, c, ...;
- truefalse: one yes/no item per option ("is this option the correct answer?");
- drop: distractors removed one at a time in a seeded order down to two options; the gold is always kept;
- nota: the gold removed and "None of the above" added last; that option is then the correct one.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.core.hashing import text_digest
from lmaudit.core.types import Sample

KINDS = ("original", "rotate", "permute", "relabel", "truefalse", "drop", "nota")
MCQ_KINDS = ("original", "rotate", "permute", "relabel", "drop", "nota")  # answered by choosing a label
LABEL_SETS = {"upper": string.ascii_uppercase, "lower": string.ascii_lowercase, "digits": None}
NOTA_TEXT = "None of the above"
YES_NO = ("Yes", "No")
MAX_OPTIONS = 26

# Options that point at other options ("all of the above", "both A and B") change meaning when options are
# removed or judged alone, so such items get no truefalse, drop or nota variants. A heuristic, kept strict.
_REFERS_PHRASE = re.compile(r"\b(all|none|both|neither|any) of (the )?(above|these|those|them|options|choices|"
                            r"answers)\b", re.IGNORECASE)
_NEEDS_SELF_CONTAINED = ("truefalse", "drop", "nota")


@dataclass(frozen=True)
class McqItem:
    """A source item: the question, its options, the gold index and the source sample's metadata."""

    id: str
    question: str
    choices: tuple[str, ...]
    gold: int
    metadata: dict[str, Any]

    @classmethod
    def from_sample(cls, sample: Sample, task_name: str) -> "McqItem":
        """Any sample with data['question'], data['choices'] and the gold index as target; else a DataError."""
        where = f"task {task_name}, sample '{sample.id}'"
        question = sample.data.get("question")
        choices = sample.data.get("choices")
        if not isinstance(question, str):
            raise DataError(f"{where}: field 'question' must be a string, got {question!r}")
        if not isinstance(choices, (list, tuple)) or not all(isinstance(c, str) for c in choices):
            raise DataError(f"{where}: field 'choices' must be a list of strings, got {choices!r}")
        if not 2 <= len(choices) <= MAX_OPTIONS:
            raise DataError(f"{where}: field 'choices' has {len(choices)} options; variants need 2-{MAX_OPTIONS}")
        target = sample.target
        if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < len(choices):
            raise DataError(f"{where}: field 'target' must be the gold option's index 0-{len(choices) - 1}, "
                            f"got {target!r}")
        return cls(sample.id, question, tuple(choices), target, dict(sample.metadata))

    def refers_to_options(self) -> bool:
        letters = "".join(labels("upper", len(self.choices)))
        by_letter = re.compile(rf"\b(Both|Neither|Only|Either) [{letters}]\b|\b[{letters}] (and|or|&) [{letters}]\b")
        return any(_REFERS_PHRASE.search(c) or by_letter.search(c) for c in self.choices)


@dataclass(frozen=True)
class Variant:
    """One derived item. For truefalse, `choices` holds the one option asked about and target 0 means Yes."""

    source: McqItem
    kind: str
    name: str
    choices: tuple[str, ...]
    option_map: tuple[int, ...]  # source option shown at each position; the NOTA option maps to the gold
    labels: tuple[str, ...]
    target: int
    nota: int | None = None  # position of the "none of the above" option

    @property
    def id(self) -> str:
        return f"{self.source.id}|{self.name}"

    def to_sample(self) -> Sample:
        metadata = {**self.source.metadata, "kind": self.kind, "variant": self.name,
                    "option_map": list(self.option_map), "labels": list(self.labels),
                    "source_gold": self.source.gold, "n_source_options": len(self.source.choices)}
        if self.nota is not None:
            metadata["nota"] = self.nota
        data = {"question": self.source.question, "choices": list(self.choices), "labels": list(self.labels)}
        return Sample(id=self.id, data=data, target=self.target, metadata=metadata, source_id=self.source.id)


def labels(style: str, n: int) -> tuple[str, ...]:
    if style not in LABEL_SETS:
        raise ConfigError(f"unknown label style '{style}'; valid: {', '.join(LABEL_SETS)}")
    alphabet = LABEL_SETS[style]
    return tuple(str(i + 1) for i in range(n)) if alphabet is None else tuple(alphabet[:n])


def source_option(metadata: dict[str, Any], chosen: int) -> int:
    """The source option a model picked when it chose position `chosen` of a (non-truefalse) variant."""
    return int(metadata["option_map"][chosen])


def reorder(item: McqItem, kind: str, name: str, order: Sequence[int], style: str = "upper") -> Variant:
    """The item showing source options `order` (a permutation, or a subset that keeps the gold) in that order."""
    order = tuple(int(i) for i in order)
    if item.gold not in order or len(set(order)) != len(order) or not set(order) <= set(range(len(item.choices))):
        raise ConfigError(f"item '{item.id}': {list(order)} is not an order of distinct options that keeps the gold")
    return Variant(item, kind, name, tuple(item.choices[i] for i in order), order, labels(style, len(order)),
                   order.index(item.gold))


def _rng(item: McqItem, kind: str, seed: int) -> np.random.Generator:
    # Seeded by item id, so an item's variants do not depend on which other items are in the run.
    return np.random.default_rng([seed, int(text_digest(f"{item.id}|{kind}")[:15], 16)])


def original(item: McqItem) -> list[Variant]:
    return [reorder(item, "original", "original", range(len(item.choices)))]


def rotations(item: McqItem) -> list[Variant]:
    n = len(item.choices)
    return [reorder(item, "rotate", f"rot{shift}", [(i + shift) % n for i in range(n)]) for shift in range(1, n)]


def permutations(item: McqItem, k: int, seed: int) -> list[Variant]:
    n = len(item.choices)
    if k < 0:
        raise ConfigError(f"the number of permutations must be >= 0, got {k}")
    wanted = min(k, math.factorial(n) - 1)
    identity = tuple(range(n))
    rng = _rng(item, "permute", seed)
    chosen: list[tuple[int, ...]] = []
    while len(chosen) < wanted:
        order = tuple(int(i) for i in rng.permutation(n))
        if order != identity and order not in chosen:
            chosen.append(order)
    return [reorder(item, "permute", f"perm{index}", order) for index, order in enumerate(chosen)]


def relabellings(item: McqItem) -> list[Variant]:
    n = len(item.choices)
    return [reorder(item, "relabel", f"labels-{style}", range(n), style) for style in ("digits", "lower")]


def true_false(item: McqItem) -> list[Variant]:
    return [Variant(item, "truefalse", f"tf{option}", (text,), (option,), YES_NO, 0 if option == item.gold else 1)
            for option, text in enumerate(item.choices)]


def drops(item: McqItem, seed: int) -> list[Variant]:
    distractors = [i for i in range(len(item.choices)) if i != item.gold]
    removal = [distractors[i] for i in _rng(item, "drop", seed).permutation(len(distractors))]
    variants = []
    for removed in range(1, len(distractors)):
        kept = [i for i in range(len(item.choices)) if i not in removal[:removed]]
        variants.append(reorder(item, "drop", f"drop{removed}", kept))
    return variants


def none_of_the_above(item: McqItem) -> list[Variant]:
    kept = [i for i in range(len(item.choices)) if i != item.gold]
    position = len(kept)
    return [Variant(item, "nota", "nota", tuple(item.choices[i] for i in kept) + (NOTA_TEXT,),
                    tuple(kept) + (item.gold,), labels("upper", position + 1), position, nota=position)]


def make_variants(item: McqItem, kind: str, *, permutations_per_item: int = 4, seed: int = 0) -> list[Variant]:
    """The variants of one kind; none for truefalse/drop/nota when an option refers to other options."""
    if kind not in KINDS:
        raise ConfigError(f"unknown variant kind '{kind}'; valid: {', '.join(KINDS)}")
    if kind in _NEEDS_SELF_CONTAINED and item.refers_to_options():
        return []
    if kind == "original":
        return original(item)
    if kind == "rotate":
        return rotations(item)
    if kind == "permute":
        return permutations(item, permutations_per_item, seed)
    if kind == "relabel":
        return relabellings(item)
    if kind == "truefalse":
        return true_false(item)
    if kind == "drop":
        return drops(item, seed)
    return none_of_the_above(item)
