"""On the real bundled model: variants share requests with the plain mmlu eval, counted at the model."""

import json

import pytest

from lmaudit.calibration import run_calibration
from lmaudit.robustness import run_consistency
from lmaudit.runner import RunDir, evaluate
from lmaudit.tasks import get_task
from lmaudit.testing.counting import CountingModel

pytestmark = pytest.mark.slow
ITEMS = 2  # abstract_algebra/0 and anatomy/0: the runner's round-robin over subjects
VARIANTS = ("rotate", "permute", "relabel", "truefalse", "drop", "nota")


def test_variants_after_the_plain_eval_never_repeat_a_model_call(smollm2, one_thread, tmp_path):
    task, cache = get_task("mmlu"), tmp_path / "cache.sqlite"
    model = CountingModel(smollm2)
    plain = evaluate(model, [task], tmp_path / "plain", limit=ITEMS, cache_path=cache, progress=False)
    plain_keys = set(model.sent)
    assert plain.requests_sent == len(plain_keys) == 4 * ITEMS

    model.sent.clear()
    run = run_consistency(model, task, tmp_path / "variants", limit=ITEMS, variants=VARIANTS, permutations=1,
                          cache_path=cache, progress=False)
    records = RunDir(run.run_dir).records()
    wanted = {r["key"] for record in records for r in record.requests}
    assert plain_keys < wanted  # the original variant asks exactly what the plain eval asked ...
    assert not plain_keys & set(model.sent)  # ... and none of it reaches the model again
    assert len(model.sent) == len(set(model.sent)) == len(wanted - plain_keys) == run.requests_sent
    by_id = {r.sample_id: r for r in RunDir(tmp_path / "plain").records()}
    originals = [r for r in records if r.metadata["kind"] == "original"]
    assert len(originals) == ITEMS
    for record in originals:
        assert record.responses == by_id[record.source_id].responses
    assert {r.metadata["kind"] for r in records} == {"original", *VARIANTS}
    assert run.report.overall.n_items == ITEMS and run.report.overall.truefalse is not None

    # Re-running into the same directory is a resume: no model call, the same tables.
    model.sent.clear()
    again = run_consistency(model, task, tmp_path / "variants", limit=ITEMS, variants=VARIANTS, permutations=1,
                            cache_path=cache, progress=False)
    assert model.sent == [] and json.dumps(again.report.to_dict()) == json.dumps(run.report.to_dict())
    # Calibration of the same items reads the plain eval's answers from the cache.
    calibration = run_calibration(model, task, tmp_path / "calibration", limit=ITEMS, cache_path=cache,
                                  progress=False)
    assert model.sent == [] and calibration.report.overall.n_items == ITEMS
    outside = calibration.report.overall.outside_mass
    assert outside is not None and 0 <= outside.value <= 1
