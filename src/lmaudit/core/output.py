"""The writers every capability shares: strict JSON (no NaN), durable atomic files, JSONL, tables and figures.

Strict JSON: NaN and infinities have no JSON spelling (Python writes `NaN`, which other readers reject), so
they are written as null. Durable: a file is written beside its target, fsynced, renamed over it, and the
directory is fsynced, so after a crash the target holds either the old or the new content, never a torn one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lmaudit.core.stats import MetricSummary


def strict(value: Any) -> Any:
    """`value` with NaN/inf floats replaced by None, tuples by lists and non-JSON objects by their str()."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return strict(value.item())
    if isinstance(value, Path):
        return str(value)
    return str(value)


def dumps(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(strict(value), indent=indent, sort_keys=True, ensure_ascii=False, allow_nan=False)


def _fsync_dir(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems do not open directories; the rename is still atomic
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def write_json_atomic(path: str | Path, data: Any) -> Path:
    return write_bytes_atomic(path, (dumps(data) + "\n").encode("utf-8"))


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def append_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """Append rows (already-encoded strings are written as they are) and fsync; returns how many."""
    lines = [row if isinstance(row, str) else dumps(row, indent=None) for row in rows]
    if not lines:
        return 0
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))
        handle.flush()
        os.fsync(handle.fileno())
    return len(lines)


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> Path:
    """A whole JSONL file, replaced atomically (for tables; append_jsonl is for logs that grow)."""
    return write_text_atomic(path, "".join(dumps(row, indent=None) + "\n" for row in rows))


def write_table(rows: Sequence[Mapping[str, Any]], path: str | Path, columns: Sequence[str] | None = None) -> Path:
    """A tidy table as CSV, or Parquet when `path` ends in .parquet. Columns keep their order (stable schema)."""
    import csv
    import io

    path = Path(path)
    names = list(columns) if columns is not None else list(dict.fromkeys(k for row in rows for k in row))
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({name: [strict(row.get(name)) for row in rows] for name in names})
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        return path
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if strict(row.get(k)) is None else row.get(k)) for k in names})
    return write_text_atomic(path, buffer.getvalue())


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend: figures go to files, no display is needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | Path, *, dpi: int = 120, svg: bool = False) -> list[Path]:
    """Save a matplotlib figure as PNG (and SVG beside it when asked), atomically; closes the figure."""
    plt = pyplot()
    path = Path(path)
    written = []
    targets = [path] + ([path.with_suffix(".svg")] if svg else [])
    try:
        figure.tight_layout()
        for target in targets:
            tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
            figure.savefig(tmp, dpi=dpi)
            os.replace(tmp, target)
            written.append(target)
    finally:
        plt.close(figure)
    return written


MAX_BARS = 80  # a chart with more labels than this is unreadable: callers skip it


def bar_chart(series: dict[str, Sequence[tuple[str, "MetricSummary"]]], path: str | Path, title: str,
              value_label: str) -> Path:
    """Grouped horizontal bars (one colour per series) with 95% CI whiskers; one row per label."""
    plt = pyplot()
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
    return save_figure(figure, path, dpi=110)[0]
