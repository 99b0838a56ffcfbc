"""The vocabulary and the p/q table: words frequent enough in both reference corpora, and their shares.

A word enters the vocabulary when at least `min_human` human and `min_ai` AI reference sentences contain it
(rarer words have shares too noisy to weigh a sentence by). The table is what a run writes as
`vocabulary.csv`: each word, the sentences containing it on each side, p, q and the log odds ratio.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.llmuse.matrix import SentenceMatrix, from_word_sets
from lmaudit.llmuse.mle import SMOOTHING, MixtureProblem, word_logits
from lmaudit.llmuse.pos import check_mode, tagged_word_sets
from lmaudit.llmuse.text import word_sets

TABLE_COLUMNS = ("word", "human_sentences", "ai_sentences", "p", "q", "log_odds_ratio")


def sentence_sets(sentences: Sequence[str], mode: str, *, progress: bool = False) -> list[frozenset[str]]:
    """Sentences as word sets under a vocabulary mode: every word, or the words of one part of speech."""
    return word_sets(sentences) if check_mode(mode) == "all" else tagged_word_sets(sentences, mode,
                                                                                   progress=progress)


@dataclass(frozen=True)
class WordTable:
    words: tuple[str, ...]
    human_counts: np.ndarray
    ai_counts: np.ndarray
    n_human: int
    n_ai: int
    smoothing: float = SMOOTHING

    def rows(self) -> list[dict]:
        logit_p = word_logits(self.human_counts, self.n_human, self.smoothing)
        logit_q = word_logits(self.ai_counts, self.n_ai, self.smoothing)
        p = (self.human_counts + self.smoothing) / (self.n_human + 2 * self.smoothing)
        q = (self.ai_counts + self.smoothing) / (self.n_ai + 2 * self.smoothing)
        order = np.argsort(-(logit_q - logit_p), kind="stable")  # the most AI-leaning words first
        return [{"word": self.words[i], "human_sentences": int(self.human_counts[i]),
                 "ai_sentences": int(self.ai_counts[i]), "p": float(p[i]), "q": float(q[i]),
                 "log_odds_ratio": float(logit_q[i] - logit_p[i])} for i in order]


def build_vocabulary(human: Sequence[frozenset[str]], ai: Sequence[frozenset[str]], *, min_human: int = 5,
                     min_ai: int = 3) -> WordTable:
    """The words in at least `min_human` human and `min_ai` AI sentences (the anchor's thresholds by default)."""
    if min_human < 1 or min_ai < 1:
        raise ConfigError(f"minimum counts must be at least 1 (got {min_human}, {min_ai})")
    if not human or not ai:
        raise DataError("both reference corpora need sentences (found "
                        f"{len(human)} human and {len(ai)} AI)")
    human_counts = Counter(w for s in human for w in s)
    ai_counts = Counter(w for s in ai for w in s)
    words = sorted(w for w, c in human_counts.items() if c >= min_human and ai_counts.get(w, 0) >= min_ai)
    if not words:
        raise DataError(f"no vocabulary left: no word is in at least {min_human} human and {min_ai} AI reference "
                        f"sentences ({len(human)} human, {len(ai)} AI sentences); lower --min-human/--min-ai or "
                        f"add reference text")
    return WordTable(tuple(words), np.array([human_counts[w] for w in words], dtype=np.float64),
                     np.array([ai_counts[w] for w in words], dtype=np.float64), len(human), len(ai))


@dataclass(frozen=True)
class References:
    """Both reference corpora as matrices, ready to meet any target. Their columns are the candidate words (in at
    least one sentence of each corpus), a superset of the vocabulary (`table`): every bootstrap resample chooses
    its vocabulary again by the same minimum counts (`MixtureProblem`)."""

    table: WordTable
    candidates: tuple[str, ...]
    human: SentenceMatrix
    ai: SentenceMatrix
    min_human: int
    min_ai: int

    def matrix(self, sentences: Sequence[frozenset[str]]) -> SentenceMatrix:
        """Sentences (word sets) over the candidate words."""
        return from_word_sets(sentences, self.candidates)

    def against(self, target: SentenceMatrix) -> MixtureProblem:
        return MixtureProblem(self.human, self.ai, target, self.table.smoothing, self.min_human, self.min_ai)

    def problem(self, target: Sequence[frozenset[str]]) -> MixtureProblem:
        if not target:
            raise DataError("the target has no sentences")
        return self.against(self.matrix(target))


def references(human: Sequence[frozenset[str]], ai: Sequence[frozenset[str]], *, min_human: int = 5,
               min_ai: int = 3) -> References:
    table = build_vocabulary(human, ai, min_human=min_human, min_ai=min_ai)
    candidates = tuple(sorted(set().union(*human) & set().union(*ai)))
    return References(table, candidates, from_word_sets(human, candidates), from_word_sets(ai, candidates),
                      min_human, min_ai)
