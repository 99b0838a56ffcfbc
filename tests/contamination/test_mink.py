"""Min-K%: token log-probabilities agree with the backend's scorer; AUROC is the pairwise probability."""

import csv
import itertools
import random

import numpy as np
import pytest

from lmaudit.contamination.mink import (
    auroc,
    compare_to_nonmembers,
    min_k_score,
    mink_flags,
    token_ids,
    token_logprobs,
)
from lmaudit.core.errors import ConfigError, DataError, ModelError
from lmaudit.core.types import LoglikelihoodRequest
from lmaudit.runner import ModelRole, RunSession


def _session(model, tmp_path):
    return RunSession.open(tmp_path / "run", kind="mink", identity={}, roles=[ModelRole("target", model)],
                           cache_path=tmp_path / "cache.sqlite", progress=False)


def _pairwise(scores, labels):
    """AUROC by its definition: over all (positive, negative) pairs, 1 if the positive is higher, 1/2 if tied."""
    pos = [s for s, l in zip(scores, labels) if l]
    neg = [s for s, l in zip(scores, labels) if not l]
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)) / (len(pos) * len(neg))


def test_auroc_is_the_pairwise_probability():
    rng = random.Random(0)
    for _ in range(50):
        size = rng.randint(2, 40)
        scores = [rng.choice([0.0, 0.5, 1.0, rng.random()]) for _ in range(size)]  # many ties
        labels = [rng.random() < 0.4 for _ in range(size)]
        labels[0], labels[1] = True, False
        assert auroc(scores, labels) == pytest.approx(_pairwise(scores, labels))
    assert auroc([3, 2, 1], [True, False, False]) == 1.0
    with pytest.raises(ConfigError, match="both classes"):
        auroc([1.0, 2.0], [True, True])
    with pytest.raises(DataError, match="NaN"):
        auroc([float("nan"), 1.0], [True, False])


def test_min_k_score_takes_the_lowest_fraction():
    values = np.array([-0.1, -5.0, -0.2, -3.0, -0.3, -0.4, -0.5, -0.6, -0.7, -0.8])
    assert min_k_score(values, 0.2) == pytest.approx(-4.0)  # the two lowest of ten
    assert min_k_score(values, 1.0) == pytest.approx(values.mean())
    assert min_k_score(values[:3], 0.2) == -5.0  # at least one token
    with pytest.raises(ConfigError):
        min_k_score(values, 0.0)


class _BlackBox:
    name = "api-model"

    def fingerprint(self):
        return "api"

    def loglikelihood(self, requests):
        raise AssertionError("not called")

    def generate(self, requests):
        raise AssertionError("not called")


def test_black_box_models_are_refused(tmp_path):
    with _session(_BlackBox(), tmp_path) as session, pytest.raises(ModelError, match="white-box"):
        token_logprobs(session, ["text"])


@pytest.mark.slow
def test_token_logprobs_match_the_backend_and_mmlu_vs_unseen_text(smollm2, mmlu_items, data_dir, one_torch_thread,
                                                                  tmp_path):
    session = _session(smollm2, tmp_path)
    texts = [mmlu_items[0].text, mmlu_items[5000].text, "The cat sat on the mat."]
    logprobs = token_logprobs(session, texts)
    assert session.sent["target"] == 3
    again = token_logprobs(session, texts)  # the runner's cache answers the same request kind a second time
    assert session.sent["target"] == 3 and all((a == b).all() for a, b in zip(again, logprobs))
    # The backend's own batched scorer, with the output head at chosen positions only: an independent path.
    expected = smollm2.loglikelihood([LoglikelihoodRequest("", t) for t in texts])
    for lp, text, reference in zip(logprobs, texts, expected):
        assert len(lp) == reference.n_tokens == len(token_ids(smollm2, text)[1])
        assert lp.sum() == pytest.approx(reference.logprob, abs=2e-3)
        assert (lp <= 0).all()

    # Non-members: abstracts of arXiv papers from 2025, written after SmolLM2 was trained (released Nov 2024).
    with open(data_dir / "arxiv" / "arxiv_data_3397_clopezvice.csv", encoding="utf-8") as handle:
        abstracts = [row["abstract"] for row in csv.DictReader(handle)]
    items = random.Random(1).sample([i for i in mmlu_items if 12 <= len(i.text.split()) <= 25], 6)
    comparison = compare_to_nonmembers(session, items, abstracts, k=0.2, seed=0)
    assert len(comparison.item_scores) == len(comparison.nonmember_scores) == 6
    # Excerpts are cut to the item's token count (decoding and re-encoding may move a boundary by a token).
    assert all(abs(a - b) <= 2 for a, b in zip(comparison.item_tokens, comparison.nonmember_tokens))
    assert 0.0 <= comparison.auroc <= 1.0 and np.isfinite(comparison.item_scores + comparison.nonmember_scores).all()
    assert comparison.auroc == pytest.approx(_pairwise(comparison.item_scores + comparison.nonmember_scores,
                                                       [True] * 6 + [False] * 6))

    first, second = comparison.item_scores[:2]
    flags = mink_flags(session, items[:2], k=0.2, threshold=(first + second) / 2)  # between the two scores
    # Other batch-mates change float32 rounding, not the scores beyond that.
    assert [f.score for f in flags] == pytest.approx([first, second], abs=1e-4)
    assert [f.contaminated for f in flags] == [first > second, second > first]
    session.close()
