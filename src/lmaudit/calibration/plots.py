"""PNG plots (matplotlib, Agg): reliability diagrams and bar charts of metrics with their 95% CIs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lmaudit.calibration.metrics import CalibrationSlice, Reliability
from lmaudit.core.stats import MetricSummary


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 5))
    label = "equal-width" if binning == "width" else "equal-mass"
    _panel(axes[0], part.get("options", binning), f"every option as a point ({label} bins)")
    _panel(axes[1], part.get("top", binning), f"top choice only ({label} bins)")
    figure.suptitle(f"{title}  (n={part.n_items} items, accuracy {_ci(part.accuracy)}, Brier {_ci(part.brier)})",
                    fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def bar_chart(series: dict[str, Sequence[tuple[str, MetricSummary]]], path: str | Path, title: str,
              value_label: str) -> Path:
    """Grouped horizontal bars (one colour per series) with 95% CI whiskers; one row per label."""
    plt = _pyplot()
    labels = list(dict.fromkeys(label for rows in series.values() for label, _ in rows))
    height = 0.8 / max(1, len(series))
    figure, axis = plt.subplots(figsize=(8, 1.2 + 0.28 * len(labels) * max(1, len(series)) ** 0.5))
    for offset, (name, rows) in enumerate(series.items()):
        values = dict(rows)
        ys = [labels.index(label) + offset * height for label in values]
        summaries = list(values.values())
        error = [[max(0.0, s.value - s.ci_low) for s in summaries], [max(0.0, s.ci_high - s.value) for s in summaries]]
        axis.barh(ys, [s.value for s in summaries], height=height, xerr=error, capsize=2, label=name)
    axis.set_yticks([i + height * (len(series) - 1) / 2 for i in range(len(labels))])
    axis.set_yticklabels(labels, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel(f"{value_label} (bars: 95% bootstrap CI)")
    axis.set_title(title, fontsize=10)
    if len(series) > 1:
        axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)
