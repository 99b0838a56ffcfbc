"""ECE, MCE and Brier against synthetic models whose option probabilities are known exactly.

The synthetic models (synthetic_design.py) run through the real runner (evaluate -> samples.jsonl), so the whole
path from records to numbers is checked; every expected number follows from the design alone.
"""

import json
import math

import pytest
from synthetic_design import LETTER_MASS, TOPS, SyntheticModel, brier_expected, design, write_items

from lmaudit.calibration import calibration_report, option_probs, run_calibration
from lmaudit.core.errors import ConfigError, DataError
from lmaudit.core.types import SampleRecord
from lmaudit.runner import RunDir, evaluate
from lmaudit.tasks.custom import mcq
from lmaudit.testing.counting import CountingModel


def evaluate_design(tmp_path, n_options, shift, tag):
    rows = design(n_options, shift)
    task = mcq(str(write_items(tmp_path / f"{tag}.jsonl", rows)), name=f"synthetic_{tag}", id="id")
    model = SyntheticModel(rows, tag)
    evaluate(model, [task], tmp_path / tag, cache_path=tmp_path / "cache.sqlite", progress=False)
    return rows, RunDir(tmp_path / tag).records(), model


@pytest.mark.parametrize("n_options", [4, 2])
def test_perfectly_calibrated_model_has_zero_ece_and_mce(tmp_path, n_options):
    rows, records, _ = evaluate_design(tmp_path, n_options, 0.0, f"perfect{n_options}")
    report = calibration_report(records, n_bins=10)
    overall = report.overall
    assert overall.n_items == len(rows) == 400
    checked = [("top", "width"), ("top", "mass"), ("options", "width")]
    if n_options == 2:  # option-level values fill whole equal-mass bins only with two options (20 bins of 40)
        checked.append(("options", "mass"))
    for view, binning in checked:
        bins = 20 if (view, binning) == ("options", "mass") else 10
        reliability = calibration_report(records, n_bins=bins).overall.get(view, binning)
        assert reliability.ece.value == pytest.approx(0.0, abs=1e-9), (view, binning)
        assert reliability.mce.value == pytest.approx(0.0, abs=1e-9), (view, binning)
        assert sum(b.count for b in reliability.bins) == len(rows) * (n_options if view == "options" else 1)
    assert overall.brier.value == pytest.approx(brier_expected(rows), abs=1e-9)
    assert overall.accuracy.value == pytest.approx(sum(TOPS[n_options]) / 10, abs=1e-9)
    assert overall.outside_mass.value == pytest.approx(1 - LETTER_MASS, abs=1e-9)


@pytest.mark.parametrize("n_options, delta", [(4, 0.05), (2, 0.02)])
def test_over_confident_model_is_off_by_exactly_delta(tmp_path, n_options, delta):
    rows, records, _ = evaluate_design(tmp_path, n_options, delta, f"over{n_options}")
    report = calibration_report(records, n_bins=10, seed=3)
    top_width, top_mass = report.overall.get("top", "width"), report.overall.get("top", "mass")
    for reliability in (top_width, top_mass):
        assert reliability.ece.value == pytest.approx(delta, abs=1e-9)
        assert reliability.mce.value == pytest.approx(delta, abs=1e-9)
        assert all(b.confidence - b.accuracy == pytest.approx(delta, abs=1e-9) for b in reliability.bins)
    # Every option as a point: tops over by delta, the other (n-1) options under by delta/(n-1) each.
    options = report.overall.get("options", "width")
    assert options.ece.value == pytest.approx(2 * delta / n_options, abs=1e-9)
    assert options.mce.value == pytest.approx(delta, abs=1e-9)
    if n_options == 2:
        assert calibration_report(records, n_bins=20).overall.get("options", "mass").ece.value == \
            pytest.approx(delta, abs=1e-9)
    assert report.overall.brier.value == pytest.approx(brier_expected(rows), abs=1e-9)
    # The bootstrap CI is over items, seeded: the same seed gives the same interval.
    again = calibration_report(records, n_bins=10, seed=3).overall.get("top", "width").ece
    assert (again.ci_low, again.ci_high) == (top_width.ece.ci_low, top_width.ece.ci_high)
    assert 0 < top_width.ece.ci_low <= delta <= top_width.ece.ci_high and top_width.ece.n == 400


def test_groups_and_the_run_directory_files(tmp_path):
    rows = design(4, 0.0)
    path = tmp_path / "items.jsonl"
    with open(path, "w") as handle:
        for index, (probs, gold) in enumerate(rows):
            language = ["en", "fr", "de", "sw"][index % 4]
            handle.write(json.dumps({"id": f"s{index:03d}", "question": f"Synthetic item {index}: which?",
                                     "choices": ["a1", "b2", "c3", "d4"], "answer": gold, "language": language})
                         + "\n")
    task = mcq(str(path), name="synthetic_lang", id="id", group_by=["language"])
    model = CountingModel(SyntheticModel(rows, "lang"))
    run = run_calibration(model, task, tmp_path / "run", cache_path=tmp_path / "c.sqlite", progress=False)
    assert set(run.report.groups["language"]) == {"en", "fr", "de", "sw"}
    assert sum(part.n_items for part in run.report.groups["language"].values()) == 400
    names = {p.name for p in run.files}
    assert {"calibration.json", "calibration_bins.jsonl", "calibration_groups.jsonl", "reliability_width.png",
            "reliability_mass.png", "calibration_by_language.png"} <= names
    assert all((tmp_path / "run" / name).stat().st_size > 0 for name in names)
    assert (tmp_path / "run" / "reliability_width.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    groups = [json.loads(line) for line in (tmp_path / "run" / "calibration_groups.jsonl").read_text().splitlines()]
    assert [g["group"] for g in groups] == [None, "de", "en", "fr", "sw"]
    calls = len(model.sent)
    again = run_calibration(model, task, tmp_path / "run", cache_path=tmp_path / "c.sqlite", progress=False)
    assert len(model.sent) == calls and again.requests_sent == 0  # resumed: no model call
    assert json.dumps(again.report.to_dict()) == json.dumps(run.report.to_dict())
    with pytest.raises(ConfigError, match="no record has the metadata column 'difficulty'"):
        calibration_report(RunDir(tmp_path / "run").records(), ["difficulty"])


def record(responses, target=0, requests=None):
    requests = requests or [{"kind": "loglikelihood", "context": "Q", "continuation": f" {c}"} for c in "ABCD"]
    return SampleRecord("t", "s1", target, {}, requests, responses, {})


def ll(value):
    return {"kind": "loglikelihood", "logprob": value, "is_greedy": False, "n_tokens": 1}


def test_option_probabilities_renormalise_and_keep_the_outside_mass():
    probs = option_probs(record([ll(math.log(p)) for p in (0.4, 0.2, 0.1, 0.1)]))
    assert probs.probs == pytest.approx((0.5, 0.25, 0.125, 0.125), abs=1e-12)
    assert probs.outside_mass == pytest.approx(0.2, abs=1e-12) and probs.labels == ("A", "B", "C", "D")
    # " 1" is a prefix of " 10": the label events overlap, so the mass outside them is not defined.
    labels = [{"kind": "loglikelihood", "context": "Q", "continuation": f" {c}"} for c in ("1", "10")]
    assert option_probs(record([ll(-1.0), ll(-2.0)], requests=labels)).outside_mass is None


@pytest.mark.parametrize("responses, target, field", [
    ([ll(-1.0)], 0, "responses"),
    ([ll(-1.0), {"kind": "generate", "text": "A"}, ll(-1.0), ll(-1.0)], 0, r"responses\[1\]"),
    ([ll(-1.0)] * 4, 7, "target"),
    ([ll(float("-inf"))] * 4, 0, "responses"),
])
def test_malformed_records_name_the_record_and_field(responses, target, field):
    with pytest.raises(DataError, match=rf"sample_id='s1', field '{field}'"):
        option_probs(record(responses, target, None if len(responses) == 4 else
                            [{"kind": "loglikelihood", "context": "Q", "continuation": " A"}] * len(responses)))
