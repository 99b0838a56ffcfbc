"""The paper's picture: each top training sequence with its tokens coloured by their influence (PNG and HTML).

Red tokens raised the completion's log-probability, blue ones lowered it; the colour's strength is the token's
score over the largest |score| in its sequence, so every sequence uses its full colour range.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lmaudit.core.output import pyplot, save_figure, write_text_atomic

COLUMNS = 110  # characters per line in the PNG


@dataclass(frozen=True)
class TokenRow:
    query_id: str
    prompt: str
    completion: str
    rank: int
    sequence_id: str
    score: float
    tokens: tuple[tuple[str, float], ...]  # (text, score)


def _visible(text: str) -> str:
    return text.replace("\r", "").replace("\n", "\u21b5").replace("\t", " ")


def _colour(value: float, scale: float) -> tuple[float, float, float, float]:
    strength = 0.0 if scale <= 0 else max(-1.0, min(1.0, value / scale))
    return (0.84, 0.15, 0.16, abs(strength)) if strength >= 0 else (0.13, 0.40, 0.75, abs(strength))


def _lines(tokens: Sequence[tuple[str, float]]) -> list[list[tuple[int, str, float]]]:
    """Tokens placed on lines of COLUMNS characters: (column, text, score)."""
    lines: list[list[tuple[int, str, float]]] = [[]]
    column = 0
    for text, value in tokens:
        shown = _visible(text)
        if not shown:
            continue
        if column + len(shown) > COLUMNS and column > 0:
            lines.append([])
            column = 0
        lines[-1].append((column, shown[:COLUMNS], value))
        column += len(shown[:COLUMNS])
    return lines


def token_png(rows: Sequence[TokenRow], path: str | Path, *, title: str = "") -> Path:
    """One block per query, each top sequence's tokens on coloured cells (a monospace grid)."""
    from matplotlib.patches import Rectangle

    plt = pyplot()
    blocks: list[tuple[str, str | None, list]] = []
    for index, row in enumerate(rows):
        header = f"{row.query_id}  #{row.rank}  {row.sequence_id}  score {row.score:+.4g}"
        first = index == 0 or rows[index - 1].query_id != row.query_id  # the query's text once, above its rows
        query = f"{_visible(row.prompt)[-70:]} -> {_visible(row.completion)[:40]}" if first else None
        blocks.append((header, query, _lines(row.tokens)))
    height = sum(1 + (query is not None) + len(lines) for _, query, lines in blocks) + 1
    font = 7.0
    cell_w, cell_h = 0.6 * font / 72, 1.45 * font / 72
    fig, ax = plt.subplots(figsize=(COLUMNS * cell_w + 0.4, height * cell_h + 0.6))
    ax.set_xlim(0, COLUMNS)
    ax.set_ylim(height, 0)
    ax.axis("off")
    y = 0.5
    for header, query, lines in blocks:
        if query is not None:
            ax.text(0, y + 0.5, query, fontsize=font, family="monospace", color="0.35", va="center")
            y += 1
        ax.text(0, y + 0.5, header, fontsize=font, family="monospace", weight="bold", va="center")
        y += 1
        scale = max((abs(v) for line in lines for _, _, v in line), default=0.0)
        for line in lines:
            for column, text, value in line:
                ax.add_patch(Rectangle((column, y), len(text), 1, color=_colour(value, scale), lw=0))
            ax.text(0, y + 0.5, "".join(text for _, text, _ in line), fontsize=font, family="monospace",
                    va="center")
            y += 1
    if title:
        fig.suptitle(title, fontsize=font + 1, x=0.01, ha="left")
    save_figure(fig, path, dpi=150)
    return Path(path)


def token_html(rows: Sequence[TokenRow], path: str | Path, *, title: str = "", note: str = "") -> Path:
    """The same, as a page: hover a token for its score."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title or 'influence')}</title>",
             ("<style>body{font-family:sans-serif;max-width:60em;margin:1em auto}"
              "pre{white-space:pre-wrap;font:13px/1.6 monospace;border:1px solid #ddd;padding:.5em}"
              "span{border-radius:2px}h3{margin-bottom:.2em}.q{color:#555}</style>"),
             f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(note)}</p>"]
    current = None
    for row in rows:
        if row.query_id != current:
            current = row.query_id
            parts.append(f"<h2>query {html.escape(row.query_id)}</h2><p class='q'>{html.escape(row.prompt)}"
                         f"<b>{html.escape(row.completion)}</b></p>")
        scale = max((abs(v) for _, v in row.tokens), default=0.0)
        spans = []
        for text, value in row.tokens:
            r, g, b, a = _colour(value, scale)
            spans.append(f"<span style='background:rgba({int(r * 255)},{int(g * 255)},{int(b * 255)},{a:.2f})' "
                         f"title='{value:+.4g}'>{html.escape(text)}</span>")
        parts.append(f"<h3>#{row.rank} {html.escape(row.sequence_id)} (score {row.score:+.4g})</h3>"
                     f"<pre>{''.join(spans)}</pre>")
    write_text_atomic(path, "\n".join(parts) + "\n")
    return Path(path)
