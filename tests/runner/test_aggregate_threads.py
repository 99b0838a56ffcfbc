"""The groups of a breakdown are bootstrapped in threads when the work is large: the numbers must be those of
the groups summarised one after another, each with its own seeded generator."""

import numpy as np

from lmaudit.core.stats import RESAMPLES
from lmaudit.core.types import SampleRecord
from lmaudit.runner.aggregate import _THREADED_DRAWS, aggregate, summarize_records


def _records(n: int) -> list[SampleRecord]:
    rng = np.random.default_rng(7)
    return [SampleRecord(task="t", sample_id=str(i), target=None,
                         metadata={"subject": f"s{i % 37}", "category": f"c{i % 5}"}, requests=[], responses=[],
                         scores={"acc": float(rng.random() < 0.3), "loss": float(rng.random())})
            for i in range(n)]


def test_threaded_breakdown_equals_one_group_after_another():
    records = _records(6000)
    assert 6000 * 3 * 2 * RESAMPLES >= _THREADED_DRAWS  # this run takes the threads
    result = aggregate(records, ["acc", "loss"], ["subject", "category"], seed=3)
    assert result["metrics"] == summarize_records(records, ["acc", "loss"], seed=3)
    for key in ("subject", "category"):
        names = sorted({r.metadata[key] for r in records})
        assert list(result["groups"][key]) == names
        for name in names:
            members = [r for r in records if r.metadata[key] == name]
            assert result["groups"][key][name] == summarize_records(members, ["acc", "loss"], seed=3)
