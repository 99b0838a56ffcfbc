"""The predictable-scaling figures: L(C) over the ladder with its bootstrap band and the registered prediction
against the actual target (the GPT-4 report's Fig. 1), and -E[log pass_rate](C) per difficulty bucket (Fig. 2)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmaudit.core.output import pyplot, save_figure
from lmaudit.scaling.fit import ComputeLawFit, PassRateFit
from lmaudit.scaling.prediction import RegisteredPrediction
from lmaudit.scaling.runs import RunRecord


def plot_scaling(path: str | Path, runs: Sequence[RunRecord], fit: ComputeLawFit, *,
                 prediction: RegisteredPrediction | None = None, target: RunRecord | None = None,
                 extend_to: float | None = None) -> Path:
    """Write a PNG; the curve runs from the smallest run to the target (or `extend_to`) compute."""
    compute = np.array([r.compute for r in runs])
    loss = np.array([r.loss for r in runs])
    right = max([compute.max(), extend_to or 0.0] + [x.compute for x in (prediction, target) if x is not None])
    grid = np.logspace(np.log10(compute.min()) - 0.1, np.log10(right) + 0.15, 200)
    draws = fit.sample_predictions(grid)
    tail = 100 * (1 - fit.confidence) / 2
    low, high = np.nanpercentile(draws, [tail, 100 - tail], axis=0)

    fig, ax = _figure()
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
    return _save(fig, ax, path, xlabel="training compute C = 6·N·D (FLOPs, non-embedding N)",
                 ylabel="held-out loss (nats / token)", title="Predictable scaling: L(C) = a·C^b + c", legend_size=8)


def plot_pass_rates(path: str | Path, fit: PassRateFit, *, extend_to: float | None = None) -> Path:
    """Write a PNG of -E[log pass_rate] against compute (log-log) for all problems and each difficulty bucket:
    the models' values, the fitted alpha*C^(-k) with its bootstrap band, and the extrapolation to `extend_to`."""
    compute = np.array(fit.overall.compute)
    right = max(compute.max(), extend_to or 0.0)
    grid = np.logspace(np.log10(compute.min()) - 0.1, np.log10(right) + 0.15, 200)
    fig, ax = _figure()
    colors = ["black", "tab:green", "tab:blue", "tab:purple", "tab:orange", "tab:red", "tab:brown"]
    for index, group in enumerate((fit.overall, *fit.buckets)):
        color = colors[index % len(colors)]
        draws = group.samples[:, :1] * grid[None, :] ** -group.samples[:, 1:2]
        tail = 100 * (1 - group.confidence) / 2
        low, high = np.nanpercentile(draws, [tail, 100 - tail], axis=0)
        ax.fill_between(grid, low, high, color=color, alpha=0.12, linewidth=0)
        ax.plot(grid, group.predict(grid), color=color, linewidth=2 if index == 0 else 1,
                label=f"{group.label}, {len(group.problems)} problems: "
                      f"{group.alpha.value:.3g}·C^-{group.k.value:.3f}")
        ax.scatter(group.compute, group.neg_log_pass, color=color, zorder=3, s=18)
        if extend_to is not None:
            est = group.extrapolate(extend_to)
            ax.errorbar([extend_to], [est.value], yerr=[[est.value - est.ci_low], [est.ci_high - est.value]],
                        fmt="D", color=color, capsize=3, zorder=4)
    if extend_to is not None:
        ax.axvline(extend_to, color="gray", linestyle=":", linewidth=1)
    ax.set_yscale("log")
    return _save(fig, ax, path, xlabel="training compute C (FLOPs)", ylabel="-E[log pass_rate] (lower is better)",
                 title="Capability scaling: -E[log pass_rate] = α·C^(-k)", legend_size=7)


def _figure() -> tuple[Any, Any]:
    return pyplot().subplots(figsize=(7, 4.5), dpi=120)


def _save(fig: Any, ax: Any, path: str | Path, *, xlabel: str, ylabel: str, title: str, legend_size: int) -> Path:
    """Label a log-compute axis, add the grid and legend, write the PNG and free the figure."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=legend_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path, dpi=120)[0]
