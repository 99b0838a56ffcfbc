"""The measurements against figures computed by hand: paired differences, scan recall, Min-K% AUROCs."""

from __future__ import annotations

import numpy as np
import pytest

from lmaudit.contamination import Flag
from lmaudit.contamination.mink import auroc
from lmaudit.core.errors import DataError
from lmaudit.core.types import SampleRecord
from lmaudit.leakage import HELDOUT, LEAKED, UNSEEN, Item
from lmaudit.leakage.measure import measure_mink, measure_scores, scan_outcome


def _item(index: int, subset: str) -> Item:
    return Item("mmlu_x", f"x/{index}", "x", f"question {index}", subset, "text" if subset == LEAKED else None)


def _record(item: Item, correct: bool, rng: np.random.Generator) -> SampleRecord:
    """A letter-choice record whose top option is the gold one exactly when `correct`."""
    logprobs = rng.normal(-3.0, 0.5, size=4)
    gold = int(rng.integers(4))
    best = int(np.argmax(logprobs))
    if correct != (best == gold):
        logprobs[gold] = logprobs.max() + 0.5 if correct else logprobs.min() - 0.5
    requests = [{"kind": "loglikelihood", "context": "Q", "continuation": f" {c}"} for c in "ABCD"]
    responses = [{"kind": "loglikelihood", "logprob": float(v), "is_greedy": False, "n_tokens": 1} for v in logprobs]
    return SampleRecord(item.task, item.sample_id, gold, {"subject": "x"}, requests, responses,
                        {"acc": float(correct)})


@pytest.fixture(scope="module")
def scenario():
    rng = np.random.default_rng(0)
    items = [_item(i, LEAKED) for i in range(40)] + [_item(i, HELDOUT) for i in range(40, 80)]
    correct = {"base": rng.random(80) < 0.3, "clean": rng.random(80) < 0.3}
    correct["leak"] = np.where(np.arange(80) < 40, rng.random(80) < 0.9, correct["clean"])
    records = {model: {item.key: _record(item, bool(ok), rng) for item, ok in zip(items, flags)}
               for model, flags in correct.items()}
    return items, records, correct


def test_paired_differences_are_the_mean_per_question_gap(scenario):
    items, records, correct = scenario
    accuracy, differences, calibration = measure_scores(items, records, seed=0)
    for subset, rows in ((LEAKED, slice(0, 40)), (HELDOUT, slice(40, 80))):
        for model in ("base", "clean", "leak"):
            assert accuracy[(model, subset)].value == pytest.approx(correct[model][rows].mean())
            assert calibration[(model, subset)].accuracy.value == pytest.approx(correct[model][rows].mean())
        gap = differences[("leak-clean", subset)]
        assert gap.value == pytest.approx((correct["leak"][rows].astype(float) - correct["clean"][rows]).mean())
        assert gap.ci_low <= gap.value <= gap.ci_high and gap.n == 40
    assert differences[("leak-clean", LEAKED)].ci_low > 0
    held = differences[("leak-clean", HELDOUT)]
    assert held.value == 0 and held.ci_low == held.ci_high == 0  # identical answers: no spread at all


def test_a_missing_record_is_named(scenario):
    items, records, _ = scenario
    partial = {**records, "leak": {k: v for k, v in list(records["leak"].items())[1:]}}
    with pytest.raises(DataError, match="leak model's evaluation has no record for mmlu_x x/0"):
        measure_scores(items, partial)


def test_scan_recall_counts_only_judged_questions():
    items = [_item(i, LEAKED) for i in range(5)] + [_item(5, UNSEEN), _item(6, HELDOUT), _item(7, HELDOUT)]
    verdicts = [True, True, False, None, True, False, True, None]
    flags = {item.key: Flag(item.task, item.sample_id, "substring", v, None) for item, v in zip(items, verdicts)}
    outcome = scan_outcome("substring", items, flags)
    assert (outcome.found, outcome.checked, outcome.unchecked) == (3, 4, 1)
    assert (outcome.false_positives, outcome.negatives_checked) == (1, 2)
    assert outcome.recall == 0.75 and outcome.false_positive_rate == 0.5


def test_mink_auroc_and_the_shift_that_cancels_a_subject_offset():
    items = [_item(i, LEAKED) for i in range(30)] + [_item(i, HELDOUT) for i in range(30, 60)]
    rng = np.random.default_rng(1)
    # The leaked subject's questions are rarer text to begin with (lower scores); training lifts them by 0.5.
    base = {item.key: float(rng.normal(-6.0 if item.subset == LEAKED else -5.0, 0.3)) for item in items}
    leak = {key: value + (0.5 if key[1] in {f"x/{i}" for i in range(30)} else 0.0) + float(rng.normal(0, 0.05))
            for key, value in base.items()}
    by_model, shift = measure_mink(items, {"base": base, "leak": leak})
    labels = [True] * 30 + [False] * 30
    assert by_model[("base", LEAKED)] == auroc([base[i.key] for i in items], labels)
    assert by_model[("base", LEAKED)] < 0.1  # the raw score says "unseen": the subject effect wins
    assert shift[LEAKED] == 1.0  # the change in score separates them perfectly
