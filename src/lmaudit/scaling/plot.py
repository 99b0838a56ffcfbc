"""The predictable-scaling figure: ladder runs, the fitted L(C) with its bootstrap band, prediction vs actual."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lmaudit.scaling.fit import ComputeLawFit
from lmaudit.scaling.runs import RunRecord

if TYPE_CHECKING:
    from lmaudit.scaling.ladder import RegisteredPrediction


def plot_scaling(path: str | Path, runs: Sequence[RunRecord], fit: ComputeLawFit, *,
                 prediction: RegisteredPrediction | None = None, target: RunRecord | None = None,
                 extend_to: float | None = None) -> Path:
    """Write a PNG; the curve runs from the smallest run to the target (or `extend_to`) compute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    compute = np.array([r.compute for r in runs])
    loss = np.array([r.loss for r in runs])
    right = max([compute.max(), extend_to or 0.0] + [x.compute for x in (prediction, target) if x is not None])
    grid = np.logspace(np.log10(compute.min()) - 0.1, np.log10(right) + 0.15, 200)
    draws = fit.sample_predictions(grid)
    tail = 100 * (1 - fit.confidence) / 2
    low, high = np.nanpercentile(draws, [tail, 100 - tail], axis=0)

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.fill_between(grid, low, high, color="tab:blue", alpha=0.18, linewidth=0,
                    label=f"{100 * fit.confidence:.0f}% bootstrap band")
    ax.plot(grid, fit.predict(grid), color="tab:blue",
            label=f"fit: {fit.a.value:.3g}·C^{fit.b.value:.3f} + {fit.c.value:.3f}")
    ax.scatter(compute, loss, color="black", zorder=3, label="ladder runs")
    if prediction is not None:
        est = prediction.loss
        ax.errorbar([prediction.compute], [est.value], yerr=[[est.value - est.ci_low], [est.ci_high - est.value]],
                    fmt="D", color="tab:orange", capsize=4, zorder=4,
                    label=f"registered prediction {est.value:.3f} ({prediction.created_at})")
    if target is not None:
        ax.scatter([target.compute], [target.loss], marker="*", s=180, color="tab:red", zorder=5,
                   label=f"actual {target.name}: {target.loss:.3f}")
    # Bootstrap fits can swing far from the data outside the ladder's range; keep the axes on the data.
    shown = list(loss)
    if target is not None:
        shown.append(target.loss)
    if prediction is not None:
        shown += [prediction.loss.ci_low, prediction.loss.ci_high]
    span = max(shown) - min(shown)
    ax.set_ylim(min(shown) - 0.25 * span, max(shown) + 0.25 * span)
    ax.set_xscale("log")
    ax.set_xlabel("training compute C = 6·N·D (FLOPs, non-embedding N)")
    ax.set_ylabel("held-out loss (nats / token)")
    ax.set_title("Predictable scaling: L(C) = a·C^b + c")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
