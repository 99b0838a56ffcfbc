"""Draw a map layout: SVG markup (the report embeds it, clickable; `lmaudit map` writes it for papers) and PNG."""

from __future__ import annotations

import warnings
from html import escape
from pathlib import Path

from lmaudit.maps.icicle import Layout

FONT = "DejaVu Sans, Arial, sans-serif"


def _fit(text: str, width: float, size: float) -> str:
    """Cut text to what fits in `width` pixels at font size `size` (about 0.58 em per character)."""
    room = max(1, int((width - 8) / (0.58 * size)))
    return text if len(text) <= room else text[: max(1, room - 1)] + "…"


def svg(layout: Layout) -> str:
    """Standalone SVG. Each box is a <rect> with data-node / data-run attributes and a <title> tooltip."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lm-map" width="{layout.width:.0f}" '
             f'height="{layout.height:.0f}" viewBox="0 0 {layout.width:.0f} {layout.height:.0f}" '
             f'font-family="{FONT}">',
             '<defs><pattern id="lm-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
             'patternTransform="rotate(45)"><rect width="2" height="6" fill="#000" fill-opacity="0.28"/>'
             '</pattern></defs>',
             '<rect width="100%" height="100%" fill="#ffffff"/>',
             f'<text x="8" y="20" font-size="15" font-weight="bold">{escape(layout.title)}</text>',
             f'<text x="8" y="40" font-size="11" fill="#444">{escape(layout.legend)}</text>']
    for box in layout.boxes:
        run = "" if box.run is None else f' data-run="{box.run}"'
        kind = "label" if box.run is None else ("diff" if box.diff else "value")
        parts.append(f'<g class="lm-node lm-{kind}" data-node="{escape(box.node, quote=True)}"{run}>'
                     f'<title>{escape(box.title)}</title>'
                     f'<rect x="{box.x:.0f}" y="{box.y:.0f}" width="{box.w - 1:.0f}" height="{box.h:.0f}" '
                     f'fill="{box.fill}" stroke="#ffffff" stroke-width="1"/>')
        if box.low_n:
            parts.append(f'<rect x="{box.x:.0f}" y="{box.y:.0f}" width="{box.w - 1:.0f}" height="{box.h:.0f}" '
                         f'fill="url(#lm-hatch)"/>')
        size = 11
        anchor, tx = ("start", box.x + 4) if box.run is None else ("middle", box.x + box.w / 2)
        parts.append(f'<text x="{tx:.0f}" y="{box.y + min(box.h, 20) / 2 + 4:.0f}" font-size="{size}" '
                     f'text-anchor="{anchor}" fill="{box.text_fill}">{escape(_fit(box.text, box.w, size))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def save_svg(layout: Layout, path: str | Path) -> Path:
    from lmaudit.core.output import write_text_atomic

    return write_text_atomic(path, svg(layout) + "\n")


def save_png(layout: Layout, path: str | Path, *, dpi: int = 100) -> Path:
    """The same boxes through matplotlib (pixel coordinates, y downwards)."""
    from matplotlib.patches import Rectangle

    from lmaudit.core.output import pyplot, save_figure

    plt = pyplot()
    figure = plt.figure(figsize=(layout.width / dpi, layout.height / dpi), dpi=dpi)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, layout.width)
    axes.set_ylim(layout.height, 0)
    axes.axis("off")
    points = 72 / dpi  # matplotlib font sizes are in points, the layout's in pixels
    axes.text(8, 20, layout.title, fontsize=15 * points, fontweight="bold", va="baseline")
    axes.text(8, 40, layout.legend, fontsize=11 * points, color="#444444", va="baseline")
    for box in layout.boxes:
        axes.add_patch(Rectangle((box.x, box.y), box.w - 1, box.h, facecolor=box.fill, edgecolor="white",
                                 linewidth=0.5, hatch="///" if box.low_n else None))
        left = box.run is None
        axes.text(box.x + 4 if left else box.x + box.w / 2, box.y + min(box.h, 20) / 2 + 4,
                  _fit(box.text, box.w, 11), fontsize=11 * points, color=box.text_fill,
                  ha="left" if left else "center", va="baseline")
    with warnings.catch_warnings():
        # save_figure's tight_layout leaves a full-figure axes alone, and says so; the layout has its margins
        warnings.filterwarnings("ignore", message=".*not compatible with tight_layout.*")
        return save_figure(figure, Path(path), dpi=dpi)[0]
