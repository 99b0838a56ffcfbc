"""Figures: estimates over time per group, the excess-vocabulary scatter, and validation (estimated vs true)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmaudit.core.output import pyplot, save_figure


def plot_estimates(rows: Sequence[dict[str, Any]], path: str | Path) -> list[Path]:
    """Per group, the corrected share with its 95% interval: a line over periods (the paper's time series) when
    the rows have periods, else one point per group."""
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(8, 4.5))
    timed = [r for r in rows if r.get("period") not in (None, "all")]
    if timed:
        periods = sorted({r["period"] for r in timed})
        for group in sorted({r["group"] for r in timed}):
            mine = sorted((r for r in timed if r["group"] == group), key=lambda r: r["period"])
            x = [periods.index(r["period"]) for r in mine]
            ax.plot(x, [100 * r["alpha"] for r in mine], marker="o", label=group)
            ax.fill_between(x, [100 * r["ci_low"] for r in mine], [100 * r["ci_high"] for r in mine], alpha=0.2)
        ax.set_xticks(range(len(periods)), periods, rotation=45, ha="right")
        ax.set_xlabel("period")
        ax.legend(fontsize=8, ncol=2)
    else:
        shown = [r for r in rows]
        x = range(len(shown))
        ax.errorbar(list(x), [100 * r["alpha"] for r in shown],
                    yerr=[[100 * (r["alpha"] - r["ci_low"]) for r in shown],
                          [100 * (r["ci_high"] - r["alpha"]) for r in shown]], fmt="o", capsize=3)
        ax.set_xticks(list(x), [r["group"] for r in shown], rotation=45, ha="right")
    ax.set_ylabel("LLM-modified sentences (%)")
    ax.set_title("estimated share of LLM-modified sentences (corrected score, 95% CI)")
    ax.axhline(0, color="gray", linewidth=0.8)
    return save_figure(figure, path)


def plot_excess(words: Sequence[dict[str, Any]], path: str | Path, *, label: int = 15) -> list[Path]:
    """Target frequency against frequency ratio (log-log), excess words in colour, the largest gaps named."""
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(7, 5))
    finite = [w for w in words if math.isfinite(w["ratio"]) and w["ratio"] > 0]
    for flag, colour, name in ((False, "#999999", "other words"), (True, "#d62728", "excess words")):
        chosen = [w for w in finite if bool(w["excess"]) == flag]
        ax.scatter([w["frequency"] for w in chosen], [w["ratio"] for w in chosen], s=8, c=colour, label=name,
                   alpha=0.7)
    for w in sorted(finite, key=lambda w: -w["gap"])[:label]:
        ax.annotate(w["word"], (w["frequency"], w["ratio"]), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axhline(1, color="gray", linewidth=0.8)
    ax.set_xlabel("frequency in the target period (share of documents)")
    ax.set_ylabel("frequency ratio (target / projected)")
    ax.set_title("excess vocabulary")
    ax.legend(fontsize=8)
    return save_figure(figure, path)


def plot_validation(rows: Sequence[dict[str, Any]], path: str | Path) -> list[Path]:
    """Mean estimate against the true share, ours (corrected score) and the target-only midpoint, with +-1 sd."""
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(6, 5))
    truth = [100 * r["share"] for r in rows]
    for key, sd_key, name in (("mean_alpha", "sd_alpha", "corrected score"),
                              ("mean_anchor", "sd_anchor", "target-only midpoint (anchor)")):
        ax.errorbar(truth, [100 * r[key] for r in rows], yerr=[100 * r[sd_key] for r in rows], fmt="o-",
                    capsize=3, label=name)
    top = max(truth + [100 * r["mean_anchor"] for r in rows]) * 1.1 + 1
    ax.plot([0, top], [0, top], color="gray", linestyle=":", label="truth")
    ax.set_xlabel("true share (%)")
    ax.set_ylabel("estimated share (%)")
    ax.set_title("validation on mixtures of known share")
    ax.legend(fontsize=8)
    return save_figure(figure, path)
