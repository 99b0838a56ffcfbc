"""Per language and tokenizer: tokens, characters and bytes per token, the premium against a reference language
with a bootstrap CI over sentences, parity, the share of text lost to unknown tokens or spelled out byte by byte,
and how many sentences fit in a context window."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from lmaudit.core.errors import ConfigError
from lmaudit.tokens.counting import LanguageCount
from lmaudit.tokens.languages import language_name, script_of

PARITY_TOLERANCE = 0.1  # a premium within [1/1.1, 1.1] counts as parity
UNKNOWN_THRESHOLD = 0.1  # languages with more than this share of characters under unknown tokens are flagged
RESAMPLES = 1000


@dataclass(frozen=True)
class PremiumRow:
    language: str
    name: str
    script: str
    tokenizer: str
    tokens: int
    chars: int
    bytes: int
    chars_per_token: float
    bytes_per_token: float
    premium: float
    premium_ci_low: float
    premium_ci_high: float
    at_parity: bool
    unknown_share: float  # of characters, under unknown tokens
    byte_fallback_share: float  # of bytes, spelled out as byte tokens
    flagged: bool
    sentences: int
    sentences_in_context: int  # leading sentences whose tokens fit the context window
    context_window: int

    def to_dict(self) -> dict:
        return asdict(self)


COLUMNS = list(PremiumRow.__dataclass_fields__)


def resample_counts(n: int, seed: int, resamples: int = RESAMPLES) -> np.ndarray:
    """How often each of n sentences is drawn in each bootstrap resample (resamples x n), shared by every
    language so that all premiums of a run see the same resamples."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    counts = np.zeros((resamples, n), np.float64)
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1.0)
    return counts


def fitting_sentences(item_tokens: np.ndarray, context_window: int) -> int:
    """How many of the leading non-empty sentences fit in the window together."""
    nonempty = item_tokens[item_tokens > 0]
    return int(np.searchsorted(np.cumsum(nonempty), context_window, side="right"))


def premiums(counts: dict[str, LanguageCount], reference: str, *, seed: int = 0,
             parity_tolerance: float = PARITY_TOLERANCE, unknown_threshold: float = UNKNOWN_THRESHOLD,
             context_window: int = 8192, resamples: int = RESAMPLES) -> list[PremiumRow]:
    """One row per language of one tokenizer's counts; the reference must be among them."""
    if reference not in counts:
        raise ConfigError(f"the reference language {reference} was not counted (counted: {', '.join(counts)})")
    ref = counts[reference]
    if ref.tokens == 0:
        raise ConfigError(f"the reference language {reference} has no tokens: its text is empty")
    codes = list(counts)
    matrix = np.stack([counts[c].item_tokens for c in codes], axis=1).astype(np.float64)  # items x languages
    draws = resample_counts(matrix.shape[0], seed, resamples)
    resampled = draws @ matrix  # resamples x languages: token sums of each resample
    reference_sums = resampled[:, codes.index(reference)]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = resampled / reference_sums[:, None]
    rows = []
    for position, code in enumerate(codes):
        c = counts[code]
        premium = c.tokens / ref.tokens
        low, high = np.nanpercentile(ratios[:, position], [2.5, 97.5])
        unknown = c.unknown_chars / c.chars if c.chars else 0.0
        rows.append(PremiumRow(
            language=code, name=language_name(code), script=script_of(code), tokenizer=c.tokenizer,
            tokens=c.tokens, chars=c.chars, bytes=c.bytes,
            chars_per_token=c.chars / c.tokens if c.tokens else float("nan"),
            bytes_per_token=c.bytes / c.tokens if c.tokens else float("nan"),
            premium=premium, premium_ci_low=float(low), premium_ci_high=float(high),
            at_parity=1 / (1 + parity_tolerance) <= premium <= 1 + parity_tolerance,
            unknown_share=unknown, byte_fallback_share=c.fallback_tokens / c.bytes if c.bytes else 0.0,
            flagged=unknown > unknown_threshold, sentences=int((c.item_tokens > 0).sum()),
            sentences_in_context=fitting_sentences(c.item_tokens, context_window), context_window=context_window))
    return rows


def summary(rows: list[PremiumRow]) -> dict:
    """One tokenizer's premiums over languages (flagged languages left out of the spread, as Petrov et al. do)."""
    kept = [r for r in rows if not r.flagged]
    values = np.array([r.premium for r in kept]) if kept else np.array([np.nan])
    worst = max(kept, key=lambda r: r.premium) if kept else None
    return {"languages": len(rows), "flagged": [r.language for r in rows if r.flagged],
            "median_premium": float(np.median(values)), "max_premium": float(values.max()),
            "max_premium_language": worst.language if worst else None,
            "share_at_parity": float(np.mean([r.at_parity for r in kept])) if kept else float("nan")}
