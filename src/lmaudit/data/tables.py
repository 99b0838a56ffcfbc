"""Read JSONL / JSON / CSV (optionally gzipped) and Parquet into rows that remember their file and line."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmaudit.core.errors import DataError, RowError

DATA_ENV = "LMAUDIT_DATA_DIR"


@dataclass(frozen=True)
class Row:
    values: dict[str, Any]
    path: str
    line: int


def require_field(row: Row, name: str, kind: type | tuple[type, ...] = str) -> Any:
    """The value of a field, or a RowError naming file, line and field."""
    if name not in row.values or row.values[name] is None:
        raise RowError(row.path, row.line, name, f"missing field (present: {', '.join(row.values) or 'none'})")
    value = row.values[name]
    if not isinstance(value, kind):
        raise RowError(row.path, row.line, name, f"expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8")
    return open(path, encoding="utf-8", newline="")


def _base_suffix(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return suffixes[-1] if suffixes else ""


def read_rows(path: str | Path, *, header: bool = True, columns: list[str] | None = None) -> Iterator[Row]:
    """Rows of a table file; a CSV without header takes `columns` as its column names."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}")
    kind = _base_suffix(path)
    if kind == ".jsonl":
        with _open_text(path) as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise RowError(str(path), number, None, f"invalid JSON ({exc.msg} at column {exc.colno})") from exc
                if not isinstance(value, dict):
                    raise RowError(str(path), number, None, "expected a JSON object per line")
                yield Row(value, str(path), number)
    elif kind == ".json":
        with _open_text(path) as handle:
            try:
                data = json.load(handle)
            except json.JSONDecodeError as exc:
                raise RowError(str(path), exc.lineno, None, f"invalid JSON ({exc.msg})") from exc
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of objects")
        for number, value in enumerate(data, start=1):
            if not isinstance(value, dict):
                raise RowError(str(path), number, None, "expected an object (line = list position)")
            yield Row(value, str(path), number)
    elif kind in {".csv", ".tsv"}:
        with _open_text(path) as handle:
            reader = csv.reader(handle, delimiter="\t" if kind == ".tsv" else ",")
            names = columns
            if header:
                try:
                    names = next(reader)
                except StopIteration:
                    return
            if names is None:
                raise DataError(f"{path}: no header row and no column names given")
            for values in reader:
                number = reader.line_num
                if not values:
                    continue
                if len(values) != len(names):
                    raise RowError(str(path), number, None,
                                   f"{len(values)} fields, expected {len(names)} ({', '.join(names)})")
                yield Row(dict(zip(names, values)), str(path), number)
    elif kind == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from exc
        for number, value in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield Row(value, str(path), number)
    else:
        raise DataError(f"{path}: unsupported file type '{kind}' (use .jsonl, .json, .csv, .tsv, .parquet, "
                        f"optionally .gz)")


def data_roots(data_dir: str | Path | None = None) -> list[Path]:
    """The folders datasets are looked for in, in order: the explicit data_dir, then $LMAUDIT_DATA_DIR."""
    roots = [Path(data_dir)] if data_dir else []
    if os.environ.get(DATA_ENV):
        roots.append(Path(os.environ[DATA_ENV]))
    return roots


def find_dataset(name: str, relative: str, *, data_dir: str | Path | None = None, how_to_get: str = "") -> Path:
    """Locate `<data dir>/<relative>`: the explicit data_dir, else $LMAUDIT_DATA_DIR. Says where it looked."""
    for root in data_roots(data_dir):
        if (root / relative).exists():
            return root / relative
    looked = ", ".join(str(root / relative) for root in data_roots(data_dir)) or f"nowhere (${DATA_ENV} is not set)"
    raise DataError(f"{name} data not found; looked in: {looked}. Point ${DATA_ENV} (or "
                    f"--data-dir) at a folder that contains '{relative}'." + (f" {how_to_get}" if how_to_get else ""))
