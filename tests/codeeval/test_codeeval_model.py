"""The bundled model through the runner on a code task: requests -> generate -> sandbox -> pass@k records.

Kept to 2 problems x 2 samples x 24 tokens: generation dominates this folder's test time."""

from __future__ import annotations

import json

import pytest

from lmaudit.codeeval import humaneval

pytestmark = pytest.mark.slow


def test_runner_reports_pass_at_k_with_intervals_and_execution_records(smollm2, data_dir, tmp_path):
    from lmaudit.runner import evaluate

    task = humaneval(n=2, temperature=0.8, max_tokens=24, timeout=5)
    result = evaluate(smollm2, [task], tmp_path / "run", limit=2, shared_cache=False, progress=False)
    metrics = result.results["tasks"]["humaneval"]["metrics"]
    assert set(metrics) == {"pass@1", "pass@2", "pass_rate"}
    for summary in metrics.values():
        low, high = summary["ci95"]
        assert summary["n"] == 2 and low <= summary["value"] <= high
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for record in records:
        assert [r["seed"] for r in record["requests"]] == [0, 1]
        assert len(record["execution"]) == 2  # the record's typed payload, one outcome per program
        assert record["scores"]["pass_rate"] == sum(o["status"] == "passed" for o in record["execution"]) / 2
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["identity"]["tasks"]["humaneval"]["sandbox"]["isolation"]["level"] == "bwrap"
