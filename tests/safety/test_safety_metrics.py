"""ASR@k and the two aggregations against what per-attempt records imply; agreement statistics."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from lmaudit.core.types import SampleRecord
from lmaudit.safety import agreement, asr_at_k, cohen_kappa
from lmaudit.safety.metrics import attack_summary, behaviour_records, judge_agreement

JUDGES = ("primary", "other")


def _records(verdicts: list[list[tuple[bool, bool]]]) -> list[SampleRecord]:
    """Attempt records as the red-team loop writes them: attempts stop at the primary judge's first jailbreak."""
    records = []
    for behaviour, attempts in enumerate(verdicts):
        for attempt, (primary, other) in enumerate(attempts, start=1):
            records.append(SampleRecord(
                task="redteam_past", sample_id=f"{behaviour}/attempt-{attempt}", target=None,
                metadata={"behavior": str(behaviour), "attempt": attempt, "category": f"c{behaviour % 3}"},
                requests=[], responses=[],
                scores={"jailbroken_primary": float(primary), "jailbroken_other": float(other)}))
            if primary:
                break
    return records


verdict_lists = st.lists(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=6),
                         min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(verdict_lists, st.randoms())
def test_asr_at_k_is_monotone_and_matches_the_records(verdicts, shuffle):
    records = _records(verdicts)
    shuffle.shuffle(records)  # the log's order must not matter
    n_attempts = max(len(v) for v in verdicts)
    ids = [str(b) for b in range(len(verdicts))]
    for judge in JUDGES:
        curve = asr_at_k(records, judge, n_attempts, ids)
        assert len(curve) == n_attempts
        assert all(a <= b for a, b in zip(curve, curve[1:]))
        for k, value in enumerate(curve, start=1):
            hit = {r.metadata["behavior"] for r in records
                   if r.metadata["attempt"] <= k and r.scores[f"jailbroken_{judge}"] == 1.0}
            assert value == len(hit) / len(ids)
    summaries = {r.sample_id: r.scores for r in behaviour_records(records, JUDGES, "primary")}
    primary_curve = asr_at_k(records, "primary", n_attempts, ids)
    assert sum(s["asr_primary"] for s in summaries.values()) / len(ids) == primary_curve[-1]
    assert sum(s["asr_any_other"] for s in summaries.values()) / len(ids) == asr_at_k(records, "other", n_attempts,
                                                                                      ids)[-1]
    for behaviour, attempts in enumerate(verdicts):
        ran = attempts[:next((i + 1 for i, v in enumerate(attempts) if v[0]), len(attempts))]
        final = ran[-1]  # the first primary jailbreak, or the last attempt made
        scores = summaries[str(behaviour)]
        assert scores["asr_other"] == float(final[1]) and scores["attempts_used"] == len(ran)
        assert scores["asr_any_other"] == float(any(v[1] for v in ran))


def test_attack_summary_groups_by_category_with_intervals():
    records = _records([[(True, True)], [(False, False), (False, True)], [(False, False)], [(True, False)]])
    summary = attack_summary(records, JUDGES)
    assert summary["n_samples"] == 4
    assert summary["metrics"]["asr_primary"]["value"] == 0.5 and summary["metrics"]["asr_any_other"]["value"] == 0.5
    low, high = summary["metrics"]["asr_primary"]["ci95"]
    assert 0.0 <= low <= 0.5 <= high <= 1.0
    assert summary["groups"]["category"]["c0"]["asr_primary"]["n"] == 2  # behaviours 0 and 3
    assert asr_at_k([], "primary", 3, ["0"]) == [0.0, 0.0, 0.0]


def test_agreement_and_kappa_by_hand():
    reference = [True, True, False, False]
    predicted = [True, False, False, False]
    # observed 0.75; chance 0.5*0.25 + 0.5*0.75 = 0.5; kappa = 0.25 / 0.5
    assert cohen_kappa(reference, predicted) == 0.5
    stats = agreement(reference, predicted)
    assert (stats.n, stats.accuracy, stats.precision, stats.recall) == (4, 0.75, 1.0, 0.5)
    assert cohen_kappa([True, False], [False, True]) == -1.0
    assert math.isnan(cohen_kappa([True, True], [True, True]))  # one constant label: kappa is undefined
    assert math.isnan(agreement([True], [False]).precision)
    records = _records([[(True, True)], [(False, True), (True, False)]])
    pairs = judge_agreement(records, JUDGES, "jailbroken")
    assert pairs["primary vs other"]["n"] == 3 and pairs["primary vs other"]["accuracy"] == 1 / 3
