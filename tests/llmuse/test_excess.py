"""Excess vocabulary on real abstracts: no change gives a bound near zero, marker words put into a known share
of the target documents give a bound near that share."""

import random

import pytest

from lmaudit.core.errors import DataError
from lmaudit.llmuse.excess import ExcessSettings, excess_vocabulary
from lmaudit.llmuse.text import words

MARKERS = ("delve", "showcase", "underscore", "intricate", "pivotal")


def _sets(texts):
    return [frozenset(words(t)) for t in texts]


def test_same_period_split_in_two_shows_no_excess(abstracts):
    texts = random.Random(1).sample(abstracts["new"], 2000)
    result = excess_vocabulary(_sets(texts[:1000]), _sets(texts[1000:]), ExcessSettings(resamples=300))
    assert result.ci.low <= 0.0 <= result.ci.high + 1e-9
    assert abs(result.lower_bound) < 0.05
    assert sum(w.excess for w in result.words) < 10


def test_markers_in_a_known_share_of_documents_are_found_and_bounded(abstracts):
    texts = abstracts["new"][:2000]
    rng = random.Random(0)
    touched = set(rng.sample(range(1000), 200))  # 20% of the target documents get a marker word
    target = [t + (f" {rng.choice(MARKERS)}" if i in touched else "") for i, t in enumerate(texts[1000:])]
    result = excess_vocabulary(_sets(texts[:1000]), _sets(target), ExcessSettings(resamples=300))
    excess = {w.word for w in result.words if w.excess}
    assert set(MARKERS) <= excess  # on all documents every marker is found
    # Markers are chosen on half the documents, where each is in ~4% of them: most pass the noise bar, and the
    # bound counts the documents showing one of those, so it is below the true 20% but well above zero.
    assert len(set(result.markers) & set(MARKERS)) >= 3 and len(result.markers) <= 8
    assert 0.08 < result.lower_bound <= 0.22 and result.ci.low <= 0.2
    top = next(w for w in result.words if w.excess)  # words are listed by gap, largest first
    assert top.word in MARKERS and top.gap_ci.low > 0 and top.projected < top.frequency


def test_trend_projection_from_two_reference_periods(abstracts):
    texts = abstracts["new"]

    def rising(docs, share):
        return [d | {"rising"} if i < share * len(docs) else d for i, d in enumerate(docs)]

    earlier, reference, target = (rising(_sets(texts[a:a + 600]), s) for a, s in ((0, 0.1), (600, 0.2), (1200, 0.3)))
    flat = excess_vocabulary(reference, target, ExcessSettings(resamples=200))
    trend = excess_vocabulary(reference, target, ExcessSettings(resamples=200), earlier=earlier, gap=1.0)

    def word(result):
        return next(w for w in result.words if w.word == "rising")

    assert word(flat).projected == pytest.approx(0.2, abs=0.01)
    assert word(trend).projected == pytest.approx(0.3, abs=0.01)  # the trend continues: no excess left
    assert abs(word(trend).gap) < 0.01


def test_too_few_documents_is_a_clear_error():
    with pytest.raises(DataError, match="needs at least 4"):
        excess_vocabulary([frozenset({"a"})], [frozenset({"a"})] * 10)
