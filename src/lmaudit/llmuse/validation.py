"""Validation at known shares: mixtures of held-out human and held-out AI sentences, and simulated corpora.

For each share (0 to 0.25) many seeded mixtures are estimated; per share the table reports the mean error (bias)
of our corrected-score estimate and of the anchor's target-only midpoint, their spread, and how often each 95%
interval covers the true share. On real text the references are the same in every mixture, so the error there
is the systematic error of these references and the coverage counts only the target's noise; the simulation
draws fresh references for every repetition, so its coverage is the honest one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from tqdm import tqdm

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.llmuse.matrix import SentenceMatrix, from_rows
from lmaudit.llmuse.mle import MixtureEstimate, MixtureProblem, estimate
from lmaudit.llmuse.simulate import WordModel, sample_mixture, sample_sentences
from lmaudit.llmuse.vocabulary import References

SHARES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25)
COLUMNS = ("share", "n_mixtures", "n_target", "mean_alpha", "sd_alpha", "error", "rmse", "coverage",
           "coverage_percentile", "coverage_profile", "mean_anchor", "sd_anchor", "anchor_error",
           "anchor_coverage", "mean_mle", "mean_width", "mean_reference_share")


def summarize(share: float, estimates: Sequence[MixtureEstimate]) -> dict:
    alpha = np.array([e.alpha for e in estimates])
    anchor = np.array([e.anchor for e in estimates])
    return {
        "share": share, "n_mixtures": len(estimates), "n_target": estimates[0].n_target,
        "mean_alpha": float(alpha.mean()), "sd_alpha": float(alpha.std(ddof=1)) if alpha.size > 1 else 0.0,
        "error": float(alpha.mean() - share), "rmse": float(np.sqrt(np.mean((alpha - share) ** 2))),
        "coverage": float(np.mean([e.ci.covers(share) for e in estimates])),
        "coverage_percentile": float(np.mean([e.ci_percentile.covers(share) for e in estimates])),
        "coverage_profile": float(np.mean([e.ci_profile.covers(share) for e in estimates])),
        "mean_anchor": float(anchor.mean()), "sd_anchor": float(anchor.std(ddof=1)) if anchor.size > 1 else 0.0,
        "anchor_error": float(anchor.mean() - share),
        "anchor_coverage": float(np.mean([e.ci_target_only.covers(share) for e in estimates])),
        "mean_mle": float(np.mean([e.mle for e in estimates])),
        "mean_width": float(np.mean([e.ci.width for e in estimates])),
        "mean_reference_share": float(np.mean([e.reference_share for e in estimates])),
    }


def headline(rows: Sequence[dict]) -> dict:
    """Max |error| over shares, the error at share 0, and the coverage range, for ours and the anchor's."""
    zero = [r for r in rows if r["share"] == 0.0]
    return {"max_abs_error": max(abs(r["error"]) for r in rows),
            "bias_at_zero": zero[0]["error"] if zero else None,
            "min_coverage": min(r["coverage"] for r in rows), "max_coverage": max(r["coverage"] for r in rows),
            "anchor_max_abs_error": max(abs(r["anchor_error"]) for r in rows),
            "anchor_bias_at_zero": zero[0]["anchor_error"] if zero else None,
            "anchor_min_coverage": min(r["anchor_coverage"] for r in rows),
            "anchor_max_coverage": max(r["anchor_coverage"] for r in rows)}


@dataclass(frozen=True)
class StudySettings:
    shares: tuple[float, ...] = SHARES
    mixtures: int = 50  # seeded mixtures (or simulated repetitions) per share
    resamples: int = 200
    seed: int = 0

    def check(self) -> None:
        if not self.shares or any(not 0 <= s < 1 for s in self.shares):
            raise ConfigError(f"shares must lie in [0, 1), got {self.shares}")
        if self.mixtures < 2:
            raise ConfigError(f"at least 2 mixtures per share are needed, got {self.mixtures}")


def _study(settings: StudySettings, draw: Callable[[float, np.random.Generator], MixtureProblem], *,
           progress: bool, label: str) -> list[dict]:
    settings.check()
    rows = []
    total = len(settings.shares) * settings.mixtures
    with tqdm(total=total, desc=label, unit="mixture", disable=not progress, dynamic_ncols=True) as bar:
        for position, share in enumerate(settings.shares):
            estimates = []
            for repetition in range(settings.mixtures):
                seed = (settings.seed, position, repetition)
                rng = np.random.default_rng(seed)
                estimates.append(estimate(draw(share, rng), resamples=settings.resamples,
                                          seed=int(rng.integers(2**31))))
                bar.update(1)
            rows.append(summarize(share, estimates))
    return rows


def validate_heldout(refs: References, human: SentenceMatrix, ai: SentenceMatrix,
                     settings: StudySettings = StudySettings(), *, target_size: int | None = None,
                     progress: bool = True) -> list[dict]:
    """Mixtures of held-out human and AI sentences (drawn without replacement) estimated against `refs`."""
    top = max(settings.shares)
    largest = min(human.n, int(ai.n / top) if top > 0 else human.n)
    size = target_size or largest
    if size > largest or size < 20:
        raise DataError(f"held-out sentences allow mixtures of at most {largest} sentences at share {top} "
                        f"({human.n} human, {ai.n} AI held out); asked for {size}, and at least 20 are needed")

    def draw(share: float, rng: np.random.Generator) -> MixtureProblem:
        n_ai = int(round(share * size))
        rows = [human.rows[human.owners[rng.choice(human.n, size - n_ai, replace=False)]],
                ai.rows[ai.owners[rng.choice(ai.n, n_ai, replace=False)]]]
        return refs.against(from_rows(sparse.vstack(rows)))

    return _study(settings, draw, progress=progress, label="validation mixtures")


@dataclass(frozen=True)
class SimulationSizes:
    n_human: int = 10_000
    n_ai: int = 10_000
    n_target: int = 5_000
    min_human: int = 5
    min_ai: int = 3


def validate_simulated(model: WordModel, sizes: SimulationSizes = SimulationSizes(),
                       settings: StudySettings = StudySettings(), *, progress: bool = True) -> list[dict]:
    """Fresh Bernoulli references and target for every repetition; the vocabulary is filtered as on real text."""

    def draw(share: float, rng: np.random.Generator) -> MixtureProblem:
        human = sample_sentences(rng, model.p, sizes.n_human)
        ai = sample_sentences(rng, model.q, sizes.n_ai)
        target = sample_mixture(rng, model, sizes.n_target, share)
        candidates = np.flatnonzero((np.asarray(human.sum(axis=0)).ravel() >= 1)
                                    & (np.asarray(ai.sum(axis=0)).ravel() >= 1))
        return MixtureProblem(from_rows(human[:, candidates]), from_rows(ai[:, candidates]),
                              from_rows(target[:, candidates]), min_human=sizes.min_human, min_ai=sizes.min_ai)

    return _study(settings, draw, progress=progress, label="simulated corpora")
