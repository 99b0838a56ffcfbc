"""Variants map every answer back to the source item's gold, for any number of options and any order."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.core.types import Sample
from lmaudit.robustness.variants import (
    KINDS,
    NOTA_TEXT,
    McqItem,
    make_variants,
    permutations,
    reorder,
    source_option,
)


@st.composite
def items(draw, min_options=2, max_options=9):
    n = draw(st.integers(min_options, max_options))
    # Distinct option texts, so a shown option identifies its source option by text as well.
    texts = draw(st.lists(st.text("abcdefghij ", min_size=1, max_size=12).map(str.strip).filter(bool),
                          min_size=n, max_size=n, unique=True))
    gold = draw(st.integers(0, n - 1))
    return McqItem(draw(st.text("xyz0123456789", min_size=1, max_size=6)), "Which one?", tuple(texts), gold,
                   {"subject": "s"})


def check_maps_back(variant, item):
    sample = variant.to_sample()
    meta = sample.metadata
    assert sample.source_id == item.id and meta["source_gold"] == item.gold and meta["kind"] == variant.kind
    if variant.kind == "truefalse":
        (option,) = meta["option_map"]
        assert sample.data["choices"] == [item.choices[option]] and meta["labels"] == ["Yes", "No"]
        assert (sample.target == 0) == (option == item.gold)
        return
    assert len(sample.data["choices"]) == len(meta["option_map"]) == len(meta["labels"])
    # The correct position of the variant translates back to the source gold ...
    assert source_option(meta, sample.target) == item.gold
    for position, text in enumerate(sample.data["choices"]):
        if meta.get("nota") == position:
            assert text == NOTA_TEXT
        else:
            # ... and every other shown option to the source option with the same text.
            assert text == item.choices[source_option(meta, position)]
            assert (position == sample.target) == (source_option(meta, position) == item.gold)


@settings(max_examples=150, deadline=None)
@given(items(), st.integers(0, 6), st.integers(0, 2**16))
def test_every_kind_maps_its_answer_back_to_the_source_gold(item, k, seed):
    for kind in KINDS:
        for variant in make_variants(item, kind, permutations_per_item=k, seed=seed):
            check_maps_back(variant, item)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_permutation_and_any_gold_keeping_subset_maps_back(data):
    item = data.draw(items())
    order = data.draw(st.permutations(range(len(item.choices))))
    check_maps_back(reorder(item, "permute", "p", order), item)
    size = data.draw(st.integers(1, len(item.choices)))
    subset = [i for i in order if i != item.gold][: size - 1] + [item.gold]
    check_maps_back(reorder(item, "drop", "d", data.draw(st.permutations(subset))), item)


@settings(max_examples=100, deadline=None)
@given(items(), st.integers(0, 30), st.integers(0, 2**16))
def test_permutations_are_distinct_not_identity_and_seeded_per_item(item, k, seed):
    n = len(item.choices)
    got = permutations(item, k, seed)
    orders = [v.option_map for v in got]
    assert len(orders) == min(k, math.factorial(n) - 1) == len(set(orders))
    assert tuple(range(n)) not in orders and all(sorted(o) == list(range(n)) for o in orders)
    assert [v.option_map for v in permutations(item, k, seed)] == orders  # same seed, same orders


@settings(max_examples=100, deadline=None)
@given(items(min_options=3))
def test_drop_removes_distractors_one_at_a_time_and_keeps_the_gold(item):
    kept = [set(v.option_map) for v in make_variants(item, "drop", seed=1)]
    assert [len(k) for k in kept] == list(range(len(item.choices) - 1, 1, -1))
    assert all(item.gold in k for k in kept)
    assert all(later < earlier for earlier, later in zip(kept, kept[1:]))  # nested: 4 -> 3 -> 2
    for variant in make_variants(item, "drop", seed=1):  # shown in source order
        assert list(variant.option_map) == sorted(variant.option_map)


def test_concrete_variants_of_one_item():
    item = McqItem("q1", "Capital of France?", ("Rome", "Paris", "Oslo", "Bern"), 1, {"subject": "geo"})
    rotations = make_variants(item, "rotate")
    assert [v.name for v in rotations] == ["rot1", "rot2", "rot3"]
    assert rotations[0].choices == ("Paris", "Oslo", "Bern", "Rome") and rotations[0].target == 0
    digits, lower = make_variants(item, "relabel")
    assert digits.labels == ("1", "2", "3", "4") and lower.labels == ("a", "b", "c", "d")
    assert digits.choices == item.choices and digits.target == 1
    nota = make_variants(item, "nota")[0]
    assert nota.choices == ("Rome", "Oslo", "Bern", NOTA_TEXT) and nota.target == 3 and nota.nota == 3
    tf = make_variants(item, "truefalse")
    assert [v.target for v in tf] == [1, 0, 1, 1] and tf[1].choices == ("Paris",)
    (original,) = make_variants(item, "original")
    assert original.choices == item.choices and original.labels == ("A", "B", "C", "D")
    assert original.to_sample().id == "q1|original"


@pytest.mark.parametrize("choice", ["All of the above", "none of these", "Both A and B", "A or C"])
def test_options_that_point_at_other_options_get_no_truefalse_drop_or_nota(choice):
    item = McqItem("q", "Pick", ("x", "y", "z", choice), 0, {})
    assert item.refers_to_options()
    assert all(make_variants(item, kind) == [] for kind in ("truefalse", "drop", "nota"))
    assert len(make_variants(item, "rotate")) == 3


def test_self_contained_options_are_not_flagged():
    item = McqItem("q", "Pick", ("Vitamin A", "2 and 3", "a or b", "All mammals"), 0, {})
    assert not item.refers_to_options()


@pytest.mark.parametrize("data, target, field", [
    ({"choices": ["a", "b"]}, 0, "question"),
    ({"question": "q", "choices": "a;b"}, 0, "choices"),
    ({"question": "q", "choices": ["a"]}, 0, "choices"),
    ({"question": "q", "choices": ["a", "b"]}, 2, "target"),
    ({"question": "q", "choices": ["a", "b"]}, "A", "target"),
])
def test_non_mcq_samples_are_refused_naming_sample_and_field(data, target, field):
    with pytest.raises(DataError, match=f"task t, sample 's7': field '{field}'"):
        McqItem.from_sample(Sample("s7", data, target), "t")


def test_bad_orders_and_kinds_are_config_errors():
    item = McqItem("q", "Pick", ("a", "b", "c"), 2, {})
    with pytest.raises(ConfigError, match="keeps the gold"):
        reorder(item, "drop", "d", [0, 1])
    with pytest.raises(ConfigError, match="unknown variant kind 'shuffle'"):
        make_variants(item, "shuffle")
