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
from typing import Any

import numpy as np
from scipy.stats import rankdata
from tqdm import tqdm

from lmaudit.contamination.items import EvalItem
from lmaudit.contamination.results import Flag
from lmaudit.core.errors import ConfigError, DataError, ModelError

TOKEN_BUDGET = 1024  # tokens per forward pass; the full-vocabulary log-softmax is the memory that counts


def _white_box(model: Any) -> Any:
    if not all(hasattr(model, name) for name in ("model", "tokenizer", "encode_pair", "device", "max_length")):
        raise ModelError(f"Min-K% needs a white-box model (the hf backend: smollm2, hf:..., gguf:...); "
                         f"{getattr(model, 'name', type(model).__name__)} gives no token log-probabilities")
    return model


def token_ids(model: Any, text: str) -> tuple[list[int], list[int]]:
    """(prefix, tokens): the text's tokens as the backend scores a continuation with no context."""
    prefix, tokens = _white_box(model).encode_pair("", text)
    return prefix, tokens[: model.max_length - len(prefix)]  # what fits the context window is scored


def token_logprobs(model: Any, texts: Sequence[str], *, progress: bool = False) -> list[np.ndarray]:
    """log P(token | everything before it) for every token of every text, as float64 arrays."""
    import torch

    _white_box(model)
    encoded = [token_ids(model, text) for text in texts]
    order = sorted(range(len(texts)), key=lambda i: -len(encoded[i][1]))  # similar lengths share a batch
    out: list[np.ndarray | None] = [None] * len(texts)
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    with torch.inference_mode(), tqdm(total=len(texts), desc="min-k% scoring", unit="text",
                                      disable=not progress) as bar:
        start = 0
        while start < len(order):
            width = len(encoded[order[start]][0]) + len(encoded[order[start]][1])
            batch = order[start:start + max(1, TOKEN_BUDGET // max(1, width))]
            rows = [encoded[i][0] + encoded[i][1] for i in batch]
            # Right padding needs no mask: a causal model never lets a real token attend to a later pad.
            ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=model.device)
            logprobs = torch.log_softmax(model.model(input_ids=ids).logits.float(), dim=-1)
            for row, index in enumerate(batch):
                prefix, tokens = encoded[index]
                positions = torch.arange(len(prefix) - 1, len(prefix) - 1 + len(tokens), device=model.device)
                targets = torch.tensor(tokens, device=model.device)
                out[index] = logprobs[row, positions, targets].double().cpu().numpy()
            start += len(batch)
            bar.update(len(batch))
    return out  # type: ignore[return-value]


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


def mink_flags(model: Any, items: Sequence[EvalItem], *, k: float = 0.2, threshold: float | None = None,
               progress: bool = False) -> list[Flag]:
    """One flag per item with its Min-K% score; contaminated only when a threshold is given (score >= it)."""
    scores = [min_k_score(lp, k) for lp in token_logprobs(model, [item.text for item in items], progress=progress)]
    return [Flag(item.task, item.sample_id, "mink", None if threshold is None else score >= threshold, score)
            for item, score in zip(items, scores)]


def length_matched_excerpts(model: Any, texts: Sequence[str], documents: Sequence[str], *,
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
                excerpts.append(model.tokenizer.decode(tokens[:want]))
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


def compare_to_nonmembers(model: Any, items: Sequence[EvalItem], documents: Sequence[str], *, k: float = 0.2,
                          seed: int = 0, progress: bool = False) -> MinkComparison:
    texts = [item.text for item in items]
    excerpts = length_matched_excerpts(model, texts, documents, seed=seed)
    logprobs = token_logprobs(model, texts + excerpts, progress=progress)
    scores = [min_k_score(lp, k) for lp in logprobs]
    n = len(texts)
    return MinkComparison(k, scores[:n], scores[n:], [len(lp) for lp in logprobs[:n]],
                          [len(lp) for lp in logprobs[n:]], auroc(scores, [True] * n + [False] * n))
