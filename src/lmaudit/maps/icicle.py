"""Where each node of a knowledge map goes: an icicle (a tree of regions), read left to right.

Columns are the hierarchy's levels (root, areas, ..., leaves); every leaf gets one row and an area spans its
leaves' rows. A node's region is a neutral label box (name and question count) followed by one coloured
swatch per run showing the value, then, with several runs, one swatch per run showing its difference from the
first run. Low-n nodes are hatched. The SVG and PNG writers (maps/render.py) draw exactly these boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmaudit.maps.tree import KnowledgeMap, MapNode

ROW = 22
SWATCH = 50
LABEL_WIDTHS = (120, 170, 140, 250)  # root, then each level; deeper levels reuse the last width
TOP = 54  # room for the title and the legend
LEFT = 8

# Perceptual sequential ramp (anchor colours of matplotlib's viridis) and a diverging red-white-blue ramp.
SEQUENTIAL = ((0.0, (68, 1, 84)), (0.25, (59, 82, 139)), (0.5, (33, 145, 140)), (0.75, (94, 201, 98)),
              (1.0, (253, 231, 37)))
DIVERGING = ((0.0, (178, 24, 43)), (0.5, (247, 247, 247)), (1.0, (33, 102, 172)))


@dataclass(frozen=True)
class Box:
    node: str
    run: int | None  # None: the label box; k: run k's value (or difference, when diff is True)
    diff: bool
    x: float
    y: float
    w: float
    h: float
    fill: str
    text: str
    text_fill: str
    low_n: bool
    title: str


@dataclass(frozen=True)
class Layout:
    width: float
    height: float
    title: str
    legend: str
    boxes: tuple[Box, ...]


def _ramp(stops: tuple, t: float) -> tuple[int, int, int]:
    t = min(1.0, max(0.0, t))
    for (t0, c0), (t1, c1) in zip(stops, stops[1:]):
        if t <= t1:
            f = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
            return tuple(round(a + (b - a) * f) for a, b in zip(c0, c1))  # type: ignore[return-value]
    return stops[-1][1]


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#%02x%02x%02x" % rgb


def _ink(rgb: tuple[int, int, int]) -> str:
    luminance = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    return "#000000" if luminance > 140 else "#ffffff"


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _value_range(kmap: KnowledgeMap) -> tuple[float, float]:
    values = [s.value for n in kmap.nodes for s in n.stats if s.value is not None]
    if not values or (min(values) >= 0.0 and max(values) <= 1.0):
        return 0.0, 1.0
    low, high = min(values), max(values)
    return low, high if high > low else low + 1.0


def _tooltip(kmap: KnowledgeMap, node: MapNode, run: int, diff: bool) -> str:
    name = node.id or kmap.hierarchy.name
    if diff:
        d = node.diffs[run]
        assert d is not None
        p = f", McNemar p={d.p_mcnemar:.3g}" if d.p_mcnemar is not None else ""
        ci = f"[{_fmt(d.ci95[0], True)}, {_fmt(d.ci95[1], True)}]" if d.value is not None else ""
        return (f"{name}\n{kmap.runs[run]} - {kmap.runs[0]}: {_fmt(d.value, True)} {ci} paired bootstrap 95% CI, "
                f"{d.n_pairs} pairs{p}")
    s = node.stats[run]
    low = " (low n)" if s.low_n else ""
    return (f"{name}\n{kmap.runs[run]}: {kmap.metric} {_fmt(s.value)} [{_fmt(s.ci95[0])}, {_fmt(s.ci95[1])}] "
            f"{s.ci_method} 95% CI, n={s.n}{low}")


def layout(kmap: KnowledgeMap, *, difference_only: bool = False) -> Layout:
    runs = len(kmap.runs)
    value_swatches = [] if difference_only and runs > 1 else list(range(runs))
    diff_swatches = list(range(1, runs))
    swatches = len(value_swatches) + len(diff_swatches)
    depth = max(n.depth for n in kmap.nodes)
    widths = [LABEL_WIDTHS[min(d, len(LABEL_WIDTHS) - 1)] if d < depth else LABEL_WIDTHS[-1]
              for d in range(depth + 1)]
    xs = [LEFT + sum(w + swatches * SWATCH + 6 for w in widths[:d]) for d in range(depth + 1)]
    low, high = _value_range(kmap)
    spread = max([abs(d.value) for n in kmap.nodes for d in n.diffs if d is not None and d.value is not None]
                 + [0.05])

    # every leaf takes one row, in pre-order; an inner node spans the rows of its leaves
    row_of: dict[str, int] = {}
    for node in kmap.nodes:
        if not kmap.children.get(node.id):
            row_of[node.id] = len(row_of)
    first_row: dict[str, int] = {}
    rows: dict[str, int] = {}
    for node in reversed(kmap.nodes):
        kids = kmap.children.get(node.id, [])
        first_row[node.id] = row_of[node.id] if not kids else min(first_row[k] for k in kids)
        rows[node.id] = 1 if not kids else sum(rows[k] for k in kids)

    boxes = []
    for node in kmap.nodes:
        x, y, h = xs[node.depth], TOP + first_row[node.id] * ROW, rows[node.id] * ROW - 2
        width = widths[node.depth]
        n_max = max(s.n for s in node.stats)
        name = (node.label or "").replace("_", " ")
        boxes.append(Box(node.id, None, False, x, y, width, h, "#eeeeee", f"{name}  (n={n_max})", "#222222",
                         False, f"{node.id or kmap.hierarchy.name}: {n_max} samples"))
        x += width
        for run in value_swatches:
            s = node.stats[run]
            rgb = _ramp(SEQUENTIAL, (s.value - low) / (high - low)) if s.value is not None else (200, 200, 200)
            boxes.append(Box(node.id, run, False, x, y, SWATCH, h, _hex(rgb), _fmt(s.value) + ("*" if s.low_n else ""),
                             _ink(rgb), s.low_n, _tooltip(kmap, node, run, False)))
            x += SWATCH
        for run in diff_swatches:
            d = node.diffs[run]
            assert d is not None
            rgb = _ramp(DIVERGING, 0.5 + d.value / (2 * spread)) if d.value is not None else (200, 200, 200)
            boxes.append(Box(node.id, run, True, x, y, SWATCH, h, _hex(rgb), _fmt(d.value, True), _ink(rgb),
                             node.stats[run].low_n or node.stats[0].low_n, _tooltip(kmap, node, run, True)))
            x += SWATCH
    leaves = len(row_of)
    width = xs[-1] + widths[-1] + swatches * SWATCH + LEFT
    runs_text = "  |  ".join(f"{i + 1}: {label}" for i, label in enumerate(kmap.runs))
    legend = (f"swatches: {kmap.metric} per run ({runs_text})"
              + ("; then run k - run 1" if diff_swatches else "")
              + f"; * and hatching: n < {kmap.min_n}; colour scale {low:g}..{high:g}"
              + (f", differences ±{spread:.2f}" if diff_swatches else ""))
    title = f"{kmap.hierarchy.name}: {kmap.metric}"
    return Layout(width, TOP + leaves * ROW + 8, title, legend, tuple(boxes))
