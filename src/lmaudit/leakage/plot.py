"""The leakage figure: accuracy of the three models per subset (with the paired leak - clean gain), and what
each detector sees (Min-K% AUROC per model, scan recall)."""

from __future__ import annotations

from pathlib import Path

from lmaudit.core.output import pyplot, save_figure
from lmaudit.leakage.measure import MODELS, Measurements
from lmaudit.leakage.mix import LEAKED

COLOURS = {"base": "#8c8c8c", "clean": "#4c72b0", "leak": "#c44e52"}
SUBSET_LABELS = {"leaked": "leaked\n(in the mix)", "unseen": "leaked subjects,\nunseen questions",
                 "heldout": "held-out\nsubjects"}


def plot_leakage(measurements: Measurements, path: str | Path, title: str) -> Path:
    plt = pyplot()
    figure, (scores, detectors) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    subsets = list(dict.fromkeys(subset for _, subset in measurements.accuracy))
    width = 0.8 / len(MODELS)
    for offset, model in enumerate(MODELS):
        chosen = [measurements.accuracy[(model, subset)] for subset in subsets]
        xs = [i + (offset - 1) * width for i in range(len(subsets))]
        error = [[s.value - s.ci_low for s in chosen], [s.ci_high - s.value for s in chosen]]
        scores.bar(xs, [s.value for s in chosen], width, yerr=error, capsize=3, color=COLOURS[model], label=model)
    for i, subset in enumerate(subsets):
        gain = measurements.differences[("leak-clean", subset)]
        top = max(measurements.accuracy[(m, subset)].ci_high for m in MODELS)
        scores.annotate(f"leak - clean\n{gain.value:+.3f} [{gain.ci_low:+.3f}, {gain.ci_high:+.3f}]", (i, top + 0.02),
                        ha="center", va="bottom", fontsize=7)
    scores.set_xticks(range(len(subsets)))
    scores.set_xticklabels([SUBSET_LABELS.get(s, s) for s in subsets], fontsize=8)
    scores.set_ylim(0, 1.1)
    scores.axhline(0.25, color="black", linewidth=0.6, linestyle=":")
    scores.set_ylabel("MMLU accuracy (95% bootstrap CI; dotted: chance)")
    scores.legend(fontsize=8, loc="upper right")
    scores.set_title("score inflation", fontsize=10)

    labels, values, colours = [], [], []
    for model in MODELS:
        if (model, LEAKED) in measurements.mink_auroc:
            labels.append(f"Min-K%\n{model}")
            values.append(measurements.mink_auroc[(model, LEAKED)])
            colours.append(COLOURS[model])
    if LEAKED in measurements.mink_shift_auroc:
        labels.append("Min-K% shift\nleak - base")
        values.append(measurements.mink_shift_auroc[LEAKED])
        colours.append("#dd8452")
    for method, scan in measurements.scans.items():
        labels.append(f"{method}\nrecall")
        values.append(scan.recall)
        colours.append("#55a868")
    detectors.bar(range(len(values)), values, color=colours)
    for x, value in enumerate(values):
        detectors.annotate(f"{value:.2f}", (x, value + 0.01), ha="center", va="bottom", fontsize=8)
    detectors.axhline(0.5, color="black", linewidth=0.6, linestyle=":")
    detectors.set_xticks(range(len(labels)))
    detectors.set_xticklabels(labels, fontsize=7)
    detectors.set_ylim(0, 1.1)
    detectors.set_ylabel("AUROC (leaked vs held-out) or recall")
    detectors.set_title("detectors", fontsize=10)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)[0]
