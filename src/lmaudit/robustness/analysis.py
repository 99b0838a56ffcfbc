"""Robustness metrics from variant records alone (samples.jsonl): accuracy per variant, consistency, REVAS.

Per source item, the answer on each variant is translated back to a source option (metadata option_map), and
compared with the answer on the original item. For a family of variant kinds (one kind, or several together):
- accuracy: the item's share of correct answers over the family's variants;
- consistency: the item's share of the family's variants on which it picks the same source option as on the
  original (NOTA counts as the gold it replaced);
- REVAS rate: 1 if the picked source option varies anywhere across the original and the family's variants;
- consistent accuracy: 1 if the original and every variant of the family are answered correctly.
True/false: per item with every option judged, whether more than one option is called correct, whether the gold
is called wrong, etc., next to the item's MCQ answer. Every metric is a mean over items with a bootstrap CI
(lmaudit.core.stats.summarize), overall and per value of each grouping key.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmaudit.calibration import option_logprobs
from lmaudit.core.errors import DataError
from lmaudit.core.stats import MetricSummary, summarize
from lmaudit.core.types import SampleRecord
from lmaudit.runner.aggregate import group_buckets
from lmaudit.robustness.variants import KINDS, source_option

FAMILIES: dict[str, tuple[str, ...]] = {
    "rotate": ("rotate",), "permute": ("permute",), "relabel": ("relabel",), "drop": ("drop",), "nota": ("nota",),
    "order+labels": ("rotate", "permute", "relabel"),
    "all": ("rotate", "permute", "relabel", "drop", "nota"),
}
VARIANT_KEYS = ("kind", "variant", "option_map", "labels", "source_gold", "n_source_options", "nota")


@dataclass(frozen=True)
class McqAnswer:
    variant: str
    kind: str
    chosen: int  # the source option picked
    correct: bool


@dataclass
class ItemOutcomes:
    """Everything one source item's variant records say."""

    source_id: str
    gold: int
    n_options: int
    metadata: dict[str, Any]
    answers: dict[str, McqAnswer] = field(default_factory=dict)  # by variant name
    said_yes: dict[int, bool] = field(default_factory=dict)  # truefalse: source option -> called correct

    def to_dict(self) -> dict[str, Any]:
        return {"source_id": self.source_id, "gold": self.gold, "n_options": self.n_options, "metadata": self.metadata,
                "answers": {name: {"kind": a.kind, "chosen": a.chosen, "correct": a.correct}
                            for name, a in self.answers.items()},
                "said_yes": {str(option): yes for option, yes in sorted(self.said_yes.items())}}


@dataclass(frozen=True)
class VariantRow:
    variant: str
    kind: str
    accuracy: MetricSummary


@dataclass(frozen=True)
class FamilyRow:
    family: str
    kinds: tuple[str, ...]
    accuracy: MetricSummary
    consistency: MetricSummary
    revas_rate: MetricSummary
    consistent_accuracy: MetricSummary


@dataclass(frozen=True)
class TrueFalseRow:
    judgement_accuracy: MetricSummary  # share of options judged right (gold: yes, distractor: no)
    all_correct: MetricSummary  # the gold called correct and every distractor wrong
    multiple_true: MetricSummary  # more than one option called correct
    gold_false: MetricSummary  # the gold called wrong
    none_true: MetricSummary  # no option called correct
    yes_rate: MetricSummary
    mcq_accuracy: MetricSummary  # the original MCQ item answered right (same items)
    mcq_right_gold_false: MetricSummary  # right as MCQ, yet the gold called wrong as true/false


@dataclass(frozen=True)
class RobustnessSlice:
    n_items: int
    variants: tuple[VariantRow, ...]
    families: tuple[FamilyRow, ...]
    truefalse: TrueFalseRow | None


@dataclass(frozen=True)
class RobustnessReport:
    overall: RobustnessSlice
    groups: dict[str, dict[str, RobustnessSlice]]
    items: tuple[ItemOutcomes, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"overall": slice_to_dict(self.overall),
                "groups": {key: {name: slice_to_dict(s) for name, s in values.items()}
                           for key, values in self.groups.items()}}


def slice_to_dict(part: RobustnessSlice) -> dict[str, Any]:
    def metrics(row: Any) -> dict[str, Any]:
        return {name: value.to_dict() for name, value in vars(row).items() if isinstance(value, MetricSummary)}

    return {"n_items": part.n_items,
            "variants": [{"variant": r.variant, "kind": r.kind, **metrics(r)} for r in part.variants],
            "families": [{"family": r.family, "kinds": list(r.kinds), **metrics(r)} for r in part.families],
            "truefalse": metrics(part.truefalse) if part.truefalse else None}


def _require(record: SampleRecord, key: str) -> Any:
    if key not in record.metadata:
        raise DataError(f"record task={record.task} sample_id={record.sample_id!r}, field 'metadata.{key}': missing; "
                        "robustness analyses read the records of variant tasks (lmaudit.robustness.variant_tasks)")
    return record.metadata[key]


def item_outcomes(records: Sequence[SampleRecord]) -> list[ItemOutcomes]:
    """Group variant records by source item, ordered by source id (file order varies with resumes)."""
    items: dict[str, ItemOutcomes] = {}
    for record in sorted(records, key=lambda r: (str(r.source_id), r.sample_id)):
        if record.source_id is None:
            raise DataError(f"record task={record.task} sample_id={record.sample_id!r}, field 'source_id': missing; "
                            "robustness analyses read the records of variant tasks (lmaudit.robustness.variant_tasks)")
        source_id = record.source_id
        kind, variant = (_require(record, k) for k in ("kind", "variant"))
        if kind not in KINDS:
            raise DataError(f"record task={record.task} sample_id={record.sample_id!r}, field 'metadata.kind': "
                            f"unknown variant kind {kind!r}")
        if source_id not in items:
            items[source_id] = ItemOutcomes(
                source_id, int(_require(record, "source_gold")), int(_require(record, "n_source_options")),
                {k: v for k, v in record.metadata.items() if k not in VARIANT_KEYS})
        item = items[source_id]
        chosen = int(np.argmax(option_logprobs(record)))
        option_map = _require(record, "option_map")
        if kind == "truefalse":
            item.said_yes[int(option_map[0])] = chosen == 0
        else:
            picked = source_option(record.metadata, chosen)
            item.answers[variant] = McqAnswer(variant, kind, picked, picked == item.gold)
    return list(items.values())


def _family_row(items: Sequence[ItemOutcomes], family: str, kinds: tuple[str, ...], seed: int) -> FamilyRow | None:
    accuracy, consistency, revas, consistent = [], [], [], []
    for item in items:
        reference = item.answers.get("original")
        variants = [a for a in item.answers.values() if a.kind in kinds]
        if reference is None or not variants:
            continue
        accuracy.append(float(np.mean([a.correct for a in variants])))
        consistency.append(float(np.mean([a.chosen == reference.chosen for a in variants])))
        revas.append(float(any(a.chosen != reference.chosen for a in variants)))
        consistent.append(float(reference.correct and all(a.correct for a in variants)))
    if not accuracy:
        return None
    return FamilyRow(family, kinds, *(summarize(v, seed=seed) for v in (accuracy, consistency, revas, consistent)))


def _truefalse_row(items: Sequence[ItemOutcomes], seed: int) -> TrueFalseRow | None:
    judged = [i for i in items if len(i.said_yes) == i.n_options and "original" in i.answers]
    if not judged:
        return None
    columns: dict[str, list[float]] = defaultdict(list)
    for item in judged:
        yes = [item.said_yes[j] for j in range(item.n_options)]
        gold_yes = yes[item.gold]
        mcq_right = item.answers["original"].correct
        columns["judgement_accuracy"].append(float(np.mean([y == (j == item.gold) for j, y in enumerate(yes)])))
        columns["all_correct"].append(float(gold_yes and sum(yes) == 1))
        columns["multiple_true"].append(float(sum(yes) > 1))
        columns["gold_false"].append(float(not gold_yes))
        columns["none_true"].append(float(sum(yes) == 0))
        columns["yes_rate"].append(float(np.mean(yes)))
        columns["mcq_accuracy"].append(float(mcq_right))
        columns["mcq_right_gold_false"].append(float(mcq_right and not gold_yes))
    return TrueFalseRow(**{name: summarize(values, seed=seed) for name, values in columns.items()})


def _variant_order(answer: McqAnswer) -> tuple[int, str]:
    return KINDS.index(answer.kind), answer.variant


def robustness_slice(items: Sequence[ItemOutcomes], *, seed: int = 0) -> RobustnessSlice:
    names = sorted({a.variant: a for i in items for a in i.answers.values()}.values(), key=_variant_order)
    variants = tuple(VariantRow(a.variant, a.kind,
                                summarize([float(i.answers[a.variant].correct) for i in items
                                           if a.variant in i.answers], seed=seed)) for a in names)
    present = {a.kind for i in items for a in i.answers.values()}
    families, seen = [], set()
    for family, kinds in FAMILIES.items():
        used = tuple(k for k in kinds if k in present)
        # A combined family is listed only where it adds kinds beyond what another row already covers.
        if not used or (len(kinds) > 1 and (len(used) < 2 or used in seen)):
            continue
        seen.add(used)
        row = _family_row(items, family, used, seed)
        if row:
            families.append(row)
    return RobustnessSlice(len(items), variants, tuple(families), _truefalse_row(items, seed))


def robustness_report(records: Sequence[SampleRecord], group_by: Sequence[str] = (), *,
                      seed: int = 0) -> RobustnessReport:
    """Overall and per value of each metadata key in `group_by` (subject, language, difficulty, ...)."""
    items = item_outcomes(records)
    entries = [(item.metadata, item) for item in items]
    groups = {key: {name: robustness_slice(members, seed=seed) for name, members in group_buckets(entries, key).items()}
              for key in group_by}
    return RobustnessReport(robustness_slice(items, seed=seed), groups, tuple(items))
