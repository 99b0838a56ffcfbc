"""Hierarchies, interval statistics and the map's tree, layout and drawings, on real data files."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.core.types import SampleRecord
from lmaudit.maps import (
    UNMAPPED,
    MapRun,
    build_map,
    builtin,
    flat,
    is_binary,
    layout,
    load,
    mcnemar_exact,
    paired_bootstrap,
    resolve,
    save_png,
    save_svg,
    suggest,
    svg,
    wilson,
)
from lmaudit.runner import summarize_records
from lmaudit.tasks.mmlu import SUBJECTS


def record(sample_id: str, subject: str, acc: float, task: str = "mmlu") -> SampleRecord:
    return SampleRecord(task, sample_id, 0, {"subject": subject}, [], [], {"acc": acc})


# -- hierarchies ----------------------------------------------------------------------------------------

def test_mmlu_hierarchy_is_the_papers_57_subjects_17_subcategories_4_categories():
    mmlu = builtin("mmlu")
    assert sorted(mmlu.paths) == SUBJECTS
    assert len({path[1] for path in mmlu.paths.values()}) == 17
    assert {path[0] for path in mmlu.paths.values()} == {"STEM", "humanities", "social sciences",
                                                         "other (business, health, misc.)"}
    assert mmlu.paths["anatomy"] == ("other (business, health, misc.)", "health")  # the paper, not lm-eval
    assert mmlu.paths["high_school_statistics"] == ("STEM", "math")
    assert mmlu.paths["world_religions"] == ("humanities", "philosophy")


def test_truthfulqa_and_jbb_hierarchies_cover_the_real_files(data_dir):
    with open(data_dir / "truthfulqa" / "TruthfulQA.csv", encoding="utf-8") as handle:
        categories = {row["Category"] for row in csv.DictReader(handle)}
    truthful = builtin("truthfulqa")
    assert categories == set(truthful.paths)
    assert truthful.path_of("Indexical Error: Time") == ("Indexical Error", "Indexical Error: Time")
    assert truthful.path_of("Misconceptions") == ("Misconceptions", "Misconceptions")
    assert truthful.path_of("Weather") == ("Weather",)
    with open(data_dir / "jbb" / "harmful_behaviors.csv", encoding="utf-8") as handle:
        harms = {row["Category"] for row in csv.DictReader(handle)}
    assert harms == set(builtin("jbb").paths)


def test_a_users_hierarchy_from_toml_and_json(tmp_path):
    toml = tmp_path / "topics.toml"
    toml.write_text('name = "my topics"\nkey = "topic"\n[paths]\nalgebra = "math/pure"\n'
                    'calculus = ["math", "analysis"]\npoetry = ""\n', encoding="utf-8")
    hierarchy = load(toml)
    assert (hierarchy.name, hierarchy.key) == ("my topics", "topic")
    assert hierarchy.path_of("algebra") == ("math", "pure", "algebra")
    assert hierarchy.path_of("calculus") == ("math", "analysis", "calculus")
    assert hierarchy.path_of("poetry") == ("poetry",)
    assert hierarchy.path_of("chess") == (UNMAPPED, "chess")
    as_json = tmp_path / "topics.json"
    as_json.write_text(json.dumps({"key": "topic", "separator": ">", "paths": {"algebra": "math > pure"}}))
    assert resolve(str(as_json)).path_of("algebra") == ("math", "pure", "algebra")


@pytest.mark.parametrize("text, problem", [
    ('key = "topic"\n', "missing field 'paths'"),
    ('key = "topic"\n[paths]\nalgebra = 3\n', "paths.algebra: expected a path string"),
    ('key = "topic"\n[paths]\nalgebra = "math//pure"\n', "empty area name"),
    ('key = \n', "not valid TOML"),
])
def test_a_bad_hierarchy_file_names_the_file_and_field(tmp_path, text, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as error:
        load(path)
    assert str(path) in str(error.value) and problem in str(error.value)


def test_unknown_hierarchy_name_suggests_the_closest():
    with pytest.raises(ConfigError, match="Did you mean 'mmlu'"):
        resolve("mmul")


def test_suggest_picks_the_builtin_whose_leaves_cover_the_values():
    assert suggest([record("a/0", "anatomy", 1.0)]).source == "builtin:mmlu"
    jbb_record = SampleRecord("redteam_past", "1", None, {"category": "Privacy"}, [], [], {})
    assert suggest([jbb_record]).source == "builtin:jbb"
    assert suggest([record("x/0", "not a subject", 1.0)]) is None


# -- statistics -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (57, 114), (1, 1)])
def test_wilson_matches_scipy(k, n):
    expected = scipy_stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson(k, n)
    assert low == pytest.approx(expected.low, abs=1e-12) and high == pytest.approx(expected.high, abs=1e-12)


@pytest.mark.parametrize("b_only, a_only", [(0, 0), (3, 9), (20, 21), (0, 7), (400, 470)])
def test_mcnemar_exact_matches_the_binomial_test(b_only, a_only):
    expected = 1.0 if b_only + a_only == 0 else scipy_stats.binomtest(b_only, b_only + a_only, 0.5).pvalue
    assert mcnemar_exact(b_only, a_only) == pytest.approx(expected, rel=1e-9)


def test_is_binary_compares_each_value_with_0_and_1():
    assert is_binary([0.0, 1.0, 1, True, False, -0.0]) and is_binary([])
    assert not is_binary([0.0, 0.5]) and not is_binary([float("nan")]) and not is_binary([2.0, 1.0])


@pytest.mark.parametrize("scale", [1.0, 0.37])  # 0/1 scores (counts over 3 levels), and 80 distinct levels
def test_paired_bootstrap_is_seeded_and_brackets_the_difference(scale):
    a = [x * (1 + scale * i / 100) for i, x in enumerate([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0] * 10)]
    b = [x * (1 + scale * i / 50) for i, x in enumerate([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0] * 10)]
    if scale == 1.0:
        a, b = [float(x > 0) for x in a], [float(x > 0) for x in b]
    diff, low, high = paired_bootstrap(a, b, seed=3)
    assert diff == pytest.approx(sum(b) / len(b) - sum(a) / len(a))
    assert low < diff < high
    assert paired_bootstrap(a, b, seed=3) == (diff, low, high)
    assert math.isnan(paired_bootstrap([], [])[0])
    # the counts shortcut and drawing pairs are the same distribution: their CIs agree to resampling noise
    rng = np.random.default_rng(0)
    pairs = np.asarray(b) - np.asarray(a)
    drawn = pairs[rng.integers(0, len(pairs), size=(20_000, len(pairs)))].mean(axis=1)
    assert (low, high) == pytest.approx(tuple(np.percentile(drawn, [2.5, 97.5])), abs=0.03)


# -- the map --------------------------------------------------------------------------------------------

def _two_runs():
    a, b = [], []
    for index, subject in enumerate(SUBJECTS):
        for k in range(3 if subject != "virology" else 40):
            sample = f"{subject}/{k}"
            a.append(record(sample, subject, float((index + k) % 2)))
            b.append(record(sample, subject, float((index + k) % 3 == 0)))
    return a, b


def test_map_nodes_are_the_runs_aggregation_with_wilson_cis_and_low_n_marks():
    a, b = _two_runs()
    kmap = build_map([MapRun("A", a), MapRun("B", b)], builtin("mmlu"), "acc", min_n=30)
    assert len(kmap.nodes) == 1 + 4 + 17 + 57
    root = kmap.node("")
    assert root.stats[0].n == len(a)
    assert root.stats[0].value == summarize_records(a, ["acc"])["acc"]["value"]
    health = kmap.node("other (business, health, misc.) / health")
    members = [r for r in a if builtin("mmlu").paths[r.metadata["subject"]][1] == "health"]
    assert health.stats[0].n == len(members)
    assert health.stats[0].value == summarize_records(members, ["acc"])["acc"]["value"]
    assert health.stats[0].ci95 == wilson(sum(r.scores["acc"] for r in members), len(members))
    assert health.stats[0].ci_method == "wilson"
    virology = kmap.node("other (business, health, misc.) / health / virology")
    assert not virology.stats[0].low_n and kmap.node("STEM / math / abstract_algebra").stats[0].low_n
    diff = health.diffs[1]
    paired = {r.sample_id: r.scores["acc"] for r in members}
    mine = [(paired[r.sample_id], r.scores["acc"]) for r in b if r.sample_id in paired]
    assert diff.n_pairs == len(mine)
    assert diff.value == pytest.approx(sum(y - x for x, y in mine) / len(mine))
    assert diff.p_mcnemar == mcnemar_exact(sum(1 for x, y in mine if y > x), sum(1 for x, y in mine if x > y))
    assert health.diffs[0] is None


def test_values_outside_the_hierarchy_are_kept_under_one_area():
    records = [record("a/0", "anatomy", 1.0), record("z/0", "zoology", 0.0)]
    kmap = build_map([MapRun("A", records)], builtin("mmlu"), "acc")
    assert kmap.unmapped == ("zoology",)
    assert kmap.node(f"{UNMAPPED} / zoology").stats[0].n == 1
    flat_map = build_map([MapRun("A", records)], flat("subject", ["anatomy", "zoology"]), "acc")
    assert [n.id for n in flat_map.nodes] == ["", "anatomy", "zoology"]


def test_svg_and_png_draw_every_node(tmp_path):
    a, b = _two_runs()
    kmap = build_map([MapRun("A", a), MapRun("B", b)], builtin("mmlu"), "acc")
    plan = layout(kmap)
    markup = svg(plan)
    for node in kmap.nodes:
        assert f'data-node="{node.id}"' in markup.replace("&amp;", "&")
    assert markup.count('class="lm-node lm-diff"') == len(kmap.nodes)  # one difference swatch per node
    assert markup.count("url(#lm-hatch)") == sum(1 for n in kmap.nodes for s in n.stats if s.low_n) + sum(
        1 for n in kmap.nodes if n.stats[0].low_n or n.stats[1].low_n)
    only_diff = svg(layout(kmap, difference_only=True))
    assert 'class="lm-node lm-value"' not in only_diff
    svg_path, png_path = save_svg(plan, tmp_path / "map.svg"), save_png(plan, tmp_path / "map.png")
    assert svg_path.read_text().startswith("<svg")
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
