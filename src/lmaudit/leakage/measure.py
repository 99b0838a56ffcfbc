"""What a leak does to scores, and what the detectors see: paired differences, calibration, recall, AUROC.

Every comparison is paired over questions: the difference of two models' per-question accuracy, with a seeded
percentile bootstrap over questions (`core.stats.summarize` of the differences), so a question that both models
get right or wrong adds no noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lmaudit.calibration import CalibrationSlice, calibration_report
from lmaudit.contamination import Flag
from lmaudit.contamination.mink import auroc
from lmaudit.core.errors import DataError
from lmaudit.core.results import MetricRow
from lmaudit.core.stats import MetricSummary, summarize
from lmaudit.core.types import SampleRecord
from lmaudit.leakage.mix import HELDOUT, LEAKED, UNSEEN, Item

MODELS = ("base", "clean", "leak")  # the model as it was, after the clean baseline run, after the leak run
COMPARISONS = (("leak", "clean"), ("leak", "base"), ("clean", "base"))
SUBSETS = (LEAKED, UNSEEN, HELDOUT)
Key = tuple[str, str]


@dataclass(frozen=True)
class ScanOutcome:
    """A corpus scan of the training mix: recall over the questions in it, false positives over the rest."""

    method: str
    found: int  # questions in the mix that were flagged
    checked: int  # questions in the mix the method could judge (long enough)
    unchecked: int
    false_positives: int  # questions not in the mix that were flagged
    negatives_checked: int

    @property
    def recall(self) -> float:
        return self.found / self.checked if self.checked else float("nan")

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / self.negatives_checked if self.negatives_checked else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "recall": self.recall, "found": self.found, "checked": self.checked,
                "unchecked": self.unchecked, "false_positive_rate": self.false_positive_rate,
                "false_positives": self.false_positives, "negatives_checked": self.negatives_checked}


@dataclass(frozen=True)
class Measurements:
    accuracy: dict[tuple[str, str], MetricSummary]  # (model, subset)
    differences: dict[tuple[str, str], MetricSummary]  # ("leak-clean", subset): paired over questions
    calibration: dict[tuple[str, str], CalibrationSlice]  # (model, subset)
    mink_auroc: dict[tuple[str, str], float]  # (model, subset): that subset's questions against the held-out ones
    mink_shift_auroc: dict[str, float]  # subset: the same with each question's score change leak - base
    scans: dict[str, ScanOutcome]
    split: dict[str, dict[str, Any]]  # model: split_scores of its records by the substring flags

    def rows(self) -> list[MetricRow]:
        """The results.json metric rows: `task` names the model (or comparison), `group` the subset."""
        rows = [_row("acc", s, model, subset) for (model, subset), s in self.accuracy.items()]
        rows += [_row("acc_diff", s, pair, subset) for (pair, subset), s in self.differences.items()]
        for (model, subset), part in self.calibration.items():
            rows += [_row("ece", part.get("top", "width").ece, model, subset),
                     _row("brier", part.brier, model, subset), _row("confidence", part.confidence, model, subset)]
        rows += [MetricRow("mink_auroc", value, task=model, group=f"subset={subset}")
                 for (model, subset), value in self.mink_auroc.items()]
        rows += [MetricRow("mink_shift_auroc", value, task="leak-base", group=f"subset={subset}")
                 for subset, value in self.mink_shift_auroc.items()]
        for scan in self.scans.values():
            rows += [MetricRow("scan_recall", scan.recall, n=scan.checked, task=scan.method, group=f"subset={LEAKED}"),
                     MetricRow("scan_false_positive_rate", scan.false_positive_rate, n=scan.negatives_checked,
                               task=scan.method, group="subset=not-in-mix")]
        for model, split in self.split.items():
            for subset, summary in split["subsets"].items():
                acc = summary["metrics"]["acc"]
                rows.append(MetricRow("split_acc", acc["value"], acc["stderr"], tuple(acc["ci95"]), acc["n"],
                                      task=model, group=f"flags={subset}"))
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": {f"{m}/{s}": v.to_dict() for (m, s), v in self.accuracy.items()},
            "differences": {f"{p}/{s}": v.to_dict() for (p, s), v in self.differences.items()},
            "calibration": {f"{m}/{s}": v.to_dict() for (m, s), v in self.calibration.items()},
            "mink_auroc": {f"{m}/{s}": v for (m, s), v in self.mink_auroc.items()},
            "mink_shift_auroc": dict(self.mink_shift_auroc),
            "scans": {name: scan.to_dict() for name, scan in self.scans.items()},
            "split": self.split,
        }


def _row(metric: str, summary: MetricSummary, task: str, subset: str) -> MetricRow:
    return MetricRow(metric, summary.value, summary.stderr, (summary.ci_low, summary.ci_high), summary.n, task,
                     f"subset={subset}")


def subsets_of(items: Sequence[Item]) -> dict[str, list[Item]]:
    """The subsets present, in a fixed order."""
    out = {subset: [item for item in items if item.subset == subset] for subset in SUBSETS}
    return {subset: members for subset, members in out.items() if members}


def _accuracy(record: SampleRecord) -> float:
    if "acc" not in record.scores:
        raise DataError(f"record task={record.task} sample_id={record.sample_id!r} has no 'acc' score")
    return float(record.scores["acc"])


def _records_for(records: Mapping[Key, SampleRecord], members: Sequence[Item], model: str) -> list[SampleRecord]:
    missing = [item.key for item in members if item.key not in records]
    if missing:
        raise DataError(f"the {model} model's evaluation has no record for {missing[0][0]} {missing[0][1]} "
                        f"({len(missing)} missing): rerun to finish it")
    return [records[item.key] for item in members]


def measure_scores(items: Sequence[Item], records: Mapping[str, Mapping[Key, SampleRecord]], *,
                   seed: int = 0) -> tuple[dict, dict, dict]:
    """Accuracy per model and subset, paired differences, and calibration (top option, equal-width bins)."""
    accuracy, differences, calibration = {}, {}, {}
    for subset, members in subsets_of(items).items():
        chosen = {model: _records_for(records[model], members, model) for model in MODELS}
        for model, mine in chosen.items():
            accuracy[(model, subset)] = summarize([_accuracy(r) for r in mine], seed=seed)
            calibration[(model, subset)] = calibration_report(mine, (), seed=seed).overall
        for first, second in COMPARISONS:
            gaps = [_accuracy(a) - _accuracy(b) for a, b in zip(chosen[first], chosen[second])]
            differences[(f"{first}-{second}", subset)] = summarize(gaps, seed=seed)
    return accuracy, differences, calibration


def measure_mink(items: Sequence[Item], scores: Mapping[str, Mapping[Key, float]]) -> tuple[dict, dict]:
    """Min-K% AUROC of each subset's questions against the held-out subjects' questions, per model; and the
    AUROC of the per-question change in score from the base to the leak-trained model (a reference-model
    calibration that cancels what makes one subject's questions likelier than another's)."""
    groups = subsets_of(items)
    negatives = groups.get(HELDOUT, [])
    if not negatives:
        raise DataError("Min-K% AUROC needs held-out (control) questions")
    by_model, shift = {}, {}
    for subset in (LEAKED, UNSEEN):
        positives = groups.get(subset, [])
        if not positives:
            continue
        chosen = list(positives) + list(negatives)
        labels = [True] * len(positives) + [False] * len(negatives)
        for model, mine in scores.items():
            by_model[(model, subset)] = auroc([mine[item.key] for item in chosen], labels)
        if "leak" in scores and "base" in scores:
            shift[subset] = auroc([scores["leak"][i.key] - scores["base"][i.key] for i in chosen], labels)
    return by_model, shift


def scan_outcome(method: str, items: Sequence[Item], flags: Mapping[Key, Flag]) -> ScanOutcome:
    found = checked = unchecked = false_positives = negatives = 0
    for item in items:
        flag = flags.get(item.key)
        verdict = None if flag is None else flag.contaminated
        if item.subset == LEAKED:
            if verdict is None:
                unchecked += 1
            else:
                checked += 1
                found += verdict
        elif verdict is not None:
            negatives += 1
            false_positives += verdict
    return ScanOutcome(method, found, checked, unchecked, false_positives, negatives)
