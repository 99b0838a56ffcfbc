"""Min-K% Prob (Shi et al., 2024): a membership score from a white-box model's token log-probabilities.

An item's score is the mean log-probability of its k% least likely tokens: text seen in training has fewer
surprising tokens, so a higher score hints at membership. Scores are only comparable between texts of
similar length and kind; AUROC against known labels (or against length-matched text the model cannot have
seen) says how well they separate.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from lmaudit.contamination.items import EvalItem
from lmaudit.contamination.results import Flag
from lmaudit.core.errors import ConfigError, DataError
from lmaudit.core.types import TokenLogprobsRequest
from lmaudit.models.base import WhiteBoxModel, require_white_box
from lmaudit.runner.session import RunSession

ROLE = "target"  # the session role whose model is scored


def scored_model(session: RunSession) -> WhiteBoxModel:
    return require_white_box(session.roles[ROLE].model, "Min-K%")


def token_ids(model: WhiteBoxModel, text: str) -> tuple[list[int], list[int]]:
    """(prefix, tokens): the text's tokens as the backend scores a continuation with no context."""
    prefix, tokens = model.encode_pair("", text)
    return prefix, tokens[: model.max_length - len(prefix)]  # what fits the context window is scored


def token_logprobs(session: RunSession, texts: Sequence[str]) -> list[np.ndarray]:
    """log P(token | everything before it) for every token of every text (float64), through the run's cache."""
    scored_model(session)
    answers = session.call(ROLE, [TokenLogprobsRequest(text) for text in texts], label="min-k% scoring")
    return [np.asarray(answer.logprobs, dtype=np.float64) for answer in answers]  # type: ignore[union-attr]


def min_k_score(logprobs: np.ndarray, k: float = 0.2) -> float:
    """Mean of the lowest k fraction of token log-probabilities (at least one token)."""
    if not 0.0 < k <= 1.0:
        raise ConfigError(f"k is a fraction in (0, 1], got {k}")
    if len(logprobs) == 0:
        raise DataError("Min-K% of an empty text: it has no tokens")
    count = max(1, int(len(logprobs) * k))
    return float(np.sort(logprobs)[:count].mean())


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve: the chance that a random positive outscores a random negative (ties 1/2)."""
    values = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(labels, dtype=bool)
    if values.shape != positive.shape:
        raise ConfigError(f"{len(values)} scores but {len(positive)} labels")
    if np.isnan(values).any():
        raise DataError("a score is NaN; AUROC needs every score")
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ConfigError(f"AUROC needs both classes; got {n_pos} positive and {n_neg} negative")
    ranks = rankdata(values)  # average ranks, so ties count one half (Mann-Whitney U)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def mink_flags(session: RunSession, items: Sequence[EvalItem], *, k: float = 0.2,
               threshold: float | None = None) -> list[Flag]:
    """One flag per item with its Min-K% score; contaminated only when a threshold is given (score >= it)."""
    scores = [min_k_score(lp, k) for lp in token_logprobs(session, [item.text for item in items])]
    return [Flag(item.task, item.sample_id, "mink", None if threshold is None else score >= threshold, score)
            for item, score in zip(items, scores)]


def length_matched_excerpts(model: WhiteBoxModel, texts: Sequence[str], documents: Sequence[str], *,
                            seed: int = 0) -> list[str]:
    """For each text, the opening of a different document cut to the same number of tokens.

    Documents are taken in a seeded random order; one too short for the text at hand is skipped.
    """
    pool = list(documents)
    random.Random(seed).shuffle(pool)
    excerpts = []
    cursor = 0
    for text in texts:
        want = len(token_ids(model, text)[1])
        while cursor < len(pool):
            tokens = token_ids(model, pool[cursor])[1]
            cursor += 1
            if len(tokens) >= want:
                excerpts.append(model.decode(tokens[:want]))
                break
        else:
            raise DataError(f"the non-member documents ran out after {len(excerpts)} of {len(texts)} excerpts: "
                            f"give more (or longer) documents")
    return excerpts


@dataclass
class MinkComparison:
    """Min-K% of benchmark items against length-matched text the model cannot have seen."""

    k: float
    item_scores: list[float]
    nonmember_scores: list[float]
    item_tokens: list[int]
    nonmember_tokens: list[int]
    auroc: float  # items as the positive class: above 0.5 means items look more "seen" than the reference


def compare_to_nonmembers(session: RunSession, items: Sequence[EvalItem], documents: Sequence[str], *,
                          k: float = 0.2, seed: int = 0) -> MinkComparison:
    texts = [item.text for item in items]
    excerpts = length_matched_excerpts(scored_model(session), texts, documents, seed=seed)
    logprobs = token_logprobs(session, texts + excerpts)
    scores = [min_k_score(lp, k) for lp in logprobs]
    n = len(texts)
    return MinkComparison(k, scores[:n], scores[n:], [len(lp) for lp in logprobs[:n]],
                          [len(lp) for lp in logprobs[n:]], auroc(scores, [True] * n + [False] * n))
