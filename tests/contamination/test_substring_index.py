"""The vectorised substring index finds exactly what a plain `str.find` over every document finds."""

import csv
import random

import numpy as np
import pytest

from lmaudit.contamination import EvalItem, build_index
from lmaudit.contamination.corpus import Batch
from lmaudit.contamination.normalize import normalize
from lmaudit.contamination.substring import shared_windows
from lmaudit.core.errors import ConfigError


def _abstracts(data_dir, count):
    with open(data_dir / "arxiv" / "arxiv_data_3397_clopezvice.csv", encoding="utf-8") as handle:
        return [row["abstract"] for row in csv.DictReader(handle)][:count]


def _naive_hits(index, texts):
    """(item, part, doc, character offset) of every occurrence, by str.find on each normalised document."""
    normalised = [normalize(t) for t in texts]
    found = set()
    for item, parts in enumerate(index.parts):
        for part_index, part in enumerate(parts):
            for doc, text in enumerate(normalised):
                at = text.find(part)
                while at >= 0:
                    found.add((item, part_index, doc, at))
                    at = text.find(part, at + 1)
    return found


@pytest.mark.parametrize("length,min_chars", [(50, 20), (13, 5), (30, 30), (7, 2)])
def test_index_matches_naive_search(data_dir, mmlu_items, length, min_chars):
    rng = random.Random(length)
    documents = _abstracts(data_dir, 300)
    # Items cut from the documents themselves (so there is much to find, at every offset) and real MMLU items.
    items = []
    for number in range(150):
        source = normalize(rng.choice(documents))
        size = rng.randint(max(1, min_chars - 3), 2 * length + 10)
        start = rng.randrange(max(1, len(source) - size))
        items.append(EvalItem("cut", str(number), source[start:start + size].upper()))
    items += rng.sample(mmlu_items, 150)
    index = build_index("substring", items, length=length, min_chars=min_chars, seed=3)
    batch = Batch("memory")
    for line, text in enumerate(documents, start=1):
        batch.add(line, None, text)
    expected = _naive_hits(index, documents)
    assert len(expected) > 100
    assert {tuple(hit) for hit in index.scan(batch)} == expected


def test_parts_follow_the_rules(mmlu_items):
    items = [i for i in mmlu_items if i.sample_id.startswith(("moral_scenarios/", "anatomy/"))]
    index = build_index("substring", items, seed=11)
    again = build_index("substring", list(reversed(items)), seed=11)
    other_seed = build_index("substring", items, seed=12)
    assert index.parts == list(reversed(again.parts))  # the draw depends on the seed and item, not the order
    assert index.parts != other_seed.parts
    normalised = [normalize(i.text) for i in items]
    for position, (item, parts) in enumerate(zip(items, index.parts)):
        text = normalised[position]
        if len(text) < 20:
            assert parts == [] and index.verdict(position, set()) == (None, None)
            assert "not checked" in index.note(position)
        elif len(text) <= 50:
            assert parts == [text]
        else:
            assert len(set(parts)) == min(3, len(text) - 49) and all(len(p) == 50 and p in text for p in parts)
    # moral_scenarios items share a 150-character preamble: no part may come from it.
    moral = [p for i, p in enumerate(index.parts) if items[i].sample_id.startswith("moral_scenarios/")]
    preamble = normalize("For which of these two scenarios does the main character (who uses I/me/my) do something "
                         "clearly morally wrong, according to ordinary moral standards in the US as of 2020?")
    assert len(moral) > 800 and not any(part in preamble for parts in moral for part in parts)


def test_shared_windows_against_brute_force(mmlu_items):
    texts = [normalize(i.text) for i in mmlu_items if i.sample_id.startswith("moral_scenarios/1")][:60]
    texts += texts[:3]  # exact duplicates: all their windows are shared
    flags = shared_windows(texts, 50)
    for own, (text, marks) in enumerate(zip(texts, flags)):
        assert len(marks) == len(text) - 49
        for start in range(len(text) - 49):
            window = text[start:start + 50]
            assert marks[start] == any(window in other for k, other in enumerate(texts) if k != own)
    assert np.concatenate(flags).any() and not np.concatenate(flags).all()


def test_bad_parameters_are_config_errors(mmlu_items):
    with pytest.raises(ConfigError, match="min_chars"):
        build_index("substring", mmlu_items[:5], length=10, min_chars=20)
    with pytest.raises(ConfigError, match="does not take"):
        build_index("substring", mmlu_items[:5], n=13)
    with pytest.raises(ConfigError, match="unknown scan method"):
        build_index("exact", mmlu_items[:5])
