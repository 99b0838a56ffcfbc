"""Reliability diagrams as PNG (matplotlib through lmaudit.core.output, which also draws the CI bar charts)."""

from __future__ import annotations

from pathlib import Path

from lmaudit.calibration.metrics import CalibrationSlice, Reliability
from lmaudit.core.output import pyplot, save_figure
from lmaudit.core.stats import MetricSummary


def _ci(summary: MetricSummary) -> str:
    return f"{summary.value:.3f} [{summary.ci_low:.3f}, {summary.ci_high:.3f}]"


def _panel(axis, reliability: Reliability, title: str) -> None:
    bins = reliability.bins
    centres = [b.confidence for b in bins]
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    if reliability.binning == "width":
        width = bins[0].upper - bins[0].lower if bins else 0.1
        axis.bar([(b.lower + b.upper) / 2 for b in bins], [b.accuracy for b in bins], width=width * 0.9,
                 color="#4c72b0", alpha=0.35, edgecolor="#4c72b0", label="accuracy per bin")
    axis.plot(centres, [b.accuracy for b in bins], marker="o", color="#4c72b0", linewidth=1.5,
              label="accuracy vs mean probability")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_xlabel("probability the model gives")
    axis.set_ylabel("fraction correct")
    axis.set_title(title)
    text = f"ECE {_ci(reliability.ece)}\nMCE {_ci(reliability.mce)}\npoints: {sum(b.count for b in bins)}"
    axis.text(0.03, 0.97, text, transform=axis.transAxes, va="top", fontsize=8,
              bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    axis.legend(loc="lower right", fontsize=7)


def reliability_figure(part: CalibrationSlice, binning: str, path: str | Path, title: str) -> Path:
    """Two panels: every option as a point (GPT-4 style) and the top choice only."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 5))
    label = "equal-width" if binning == "width" else "equal-mass"
    _panel(axes[0], part.get("options", binning), f"every option as a point ({label} bins)")
    _panel(axes[1], part.get("top", binning), f"top choice only ({label} bins)")
    figure.suptitle(f"{title}  (n={part.n_items} items, accuracy {_ci(part.accuracy)}, Brier {_ci(part.brier)})",
                    fontsize=10)
    return save_figure(figure, path, dpi=110)[0]
