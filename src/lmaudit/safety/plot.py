"""ASR@k curves as a PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

from lmaudit.core.output import pyplot, save_figure


def plot_asr_at_k(curves: dict[str, list[float]], path: str | Path, *, title: str) -> Path:
    """One line per curve (label -> ASR@1..N); solid lines are primary-judge curves (labels without '(any)')."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for label, values in curves.items():
        ks = range(1, len(values) + 1)
        axes.plot(ks, [100 * v for v in values], label=label, linestyle="--" if "(any)" in label else "-",
                  marker="o" if len(values) <= 25 else None, markersize=3)
    axes.set_xlabel("attempts k")
    axes.set_ylabel("attack success rate within k attempts (%)")
    axes.set_ylim(-2, 102)  # lines at 0% and 100% stay visible
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return save_figure(figure, path)[0]
