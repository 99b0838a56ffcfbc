"""The premium picture: every language's premium under several tokenizers, languages sorted, log scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmaudit.core.output import pyplot, save_figure
from lmaudit.tokens.measures import PremiumRow


def premium_figure(rows: list[PremiumRow], path: Path, *, reference: str, corpus: str) -> Path:
    """Languages on the x axis in the order of their mean log premium, one marker series per tokenizer."""
    plt = pyplot()
    tokenizers = list(dict.fromkeys(r.tokenizer for r in rows))
    by = {(r.tokenizer, r.language): r for r in rows}
    languages = sorted({r.language for r in rows},
                       key=lambda code: np.mean([np.log(by[(t, code)].premium) for t in tokenizers
                                                 if (t, code) in by and by[(t, code)].premium > 0] or [0.0]))
    width = min(30.0, max(7.0, 0.13 * len(languages)))
    figure, axis = plt.subplots(figsize=(width, 5.5))
    x = np.arange(len(languages))
    for tokenizer in tokenizers:
        values = np.array([by[(tokenizer, c)].premium if (tokenizer, c) in by else np.nan for c in languages])
        flagged = np.array([(tokenizer, c) in by and by[(tokenizer, c)].flagged for c in languages])
        line, = axis.plot(x[~flagged], values[~flagged], marker="o", markersize=3, linewidth=0.8, label=tokenizer)
        if flagged.any():  # too much text under unknown tokens: the premium understates the cost
            axis.plot(x[flagged], values[flagged], marker="x", linestyle="none", color=line.get_color())
    axis.axhline(1.0, color="grey", linewidth=0.8)
    axis.set_yscale("log", base=2)
    axis.set_xticks(x)
    axis.set_xticklabels(languages, rotation=90, fontsize=6 if len(languages) > 60 else 8)
    axis.set_xlim(-1, len(languages))
    axis.set_ylabel(f"premium: tokens / tokens of {reference} (log scale)")
    axis.set_title(f"Tokenization premium per language, {corpus}\n(x: flagged, more text under unknown tokens than "
                   "the threshold)", fontsize=10)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8, loc="upper left")
    return save_figure(figure, path, dpi=110)[0]
