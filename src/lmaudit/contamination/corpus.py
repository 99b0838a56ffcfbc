"""Training corpora as files: expanded from paths, globs and folders, each file one shard streamed in batches.

Formats: JSON Lines (one document per line, text in a field), plain text (one document per line) and Parquet
(one document per row), the first two optionally gzipped. A shard is read once, front to back, in batches of
about `batch_chars` characters of text, so memory stays flat however large the corpus is.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lmaudit.core.errors import DataError, RowError

try:  # JSON parsing is most of a scan's time; orjson parses text-heavy lines 2-3x faster than json
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - same results, slower
    from json import loads as _loads

FORMATS = {".jsonl": "jsonl", ".txt": "txt", ".parquet": "parquet"}
BATCH_CHARS = 4 << 20


@dataclass(frozen=True)
class Shard:
    path: str
    format: str  # jsonl, txt or parquet
    size: int  # bytes on disk


@dataclass
class Batch:
    """Consecutive documents of one shard: `lines[i]` is the 1-based line (or Parquet row) of `texts[i]`."""

    source: str
    lines: list[int] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)  # the id field's value, when the corpus has one
    texts: list[str] = field(default_factory=list)
    chars: int = 0

    def add(self, line: int, doc_id: str | None, text: str) -> None:
        self.lines.append(line)
        self.ids.append(doc_id)
        self.texts.append(text)
        self.chars += len(text)

    @property
    def text_bytes(self) -> int:
        """UTF-8 size of the texts: what throughput is measured in."""
        return sum(len(t) if t.isascii() else len(t.encode("utf-8", "surrogatepass")) for t in self.texts)

    def doc_id(self, index: int) -> str:
        found = self.ids[index]
        return found if found is not None else f"{self.source}:{self.lines[index]}"


def _format_of(path: Path) -> str | None:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    kind = FORMATS.get(suffixes[-1].lower()) if suffixes else None
    if kind == "parquet" and path.suffix == ".gz":
        return None  # Parquet compresses its own pages; a gzipped Parquet file cannot be streamed
    return kind


def corpus_shards(patterns: Sequence[str | Path]) -> list[Shard]:
    """The files named by paths, globs (`**` recursive) and folders (every corpus file below them), sorted."""
    if not patterns:
        raise DataError("no corpus given: name files, globs or folders")
    paths: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        if glob.has_magic(text):
            found = [Path(p) for p in sorted(glob.glob(text, recursive=True)) if Path(p).is_file()]
            if not found:
                raise DataError(f"corpus glob '{text}' matches no file")
            paths += found
        elif Path(text).is_dir():
            found = sorted(p for p in Path(text).rglob("*") if p.is_file() and _format_of(p))
            if not found:
                raise DataError(f"corpus folder '{text}' holds no .jsonl, .txt or .parquet file (optionally .gz)")
            paths += found
        elif Path(text).is_file():
            paths.append(Path(text))
        else:
            raise DataError(f"corpus file not found: {text}")
    shards: dict[str, Shard] = {}
    for path in paths:
        kind = _format_of(path)
        if kind is None:
            raise DataError(f"{path}: unsupported corpus file type (use .jsonl, .txt or .parquet; "
                            f".jsonl.gz and .txt.gz are read compressed)")
        key = os.path.abspath(path)
        shards.setdefault(key, Shard(str(path), kind, path.stat().st_size))
    return list(shards.values())


def _open_binary(path: str) -> IO[bytes]:
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def read_batches(shard: Shard, *, text_field: str = "text", id_field: str = "id",
                 batch_chars: int = BATCH_CHARS) -> Iterator[Batch]:
    """Documents of one shard in batches; a malformed line raises a RowError naming file, line and field."""
    reader = {"jsonl": _jsonl, "txt": _txt, "parquet": _parquet}[shard.format]
    batch = Batch(shard.path)
    try:
        for line, doc_id, text in reader(shard.path, text_field, id_field):
            batch.add(line, doc_id, text)
            if batch.chars >= batch_chars:
                yield batch
                batch = Batch(shard.path)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{shard.path}: cannot be read ({exc})") from exc
    if batch.texts:
        yield batch


def _jsonl(path: str, text_field: str, id_field: str) -> Iterator[tuple[int, str | None, str]]:
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = _loads(raw)
            except ValueError:
                try:  # the standard parser accepts a little more (NaN, lone surrogates) and says where it failed
                    row = json.loads(raw)
                except ValueError as exc:  # JSONDecodeError and undecodable UTF-8 alike
                    raise RowError(path, number, None, f"invalid JSON ({exc})") from exc
            if not isinstance(row, dict):
                raise RowError(path, number, None, "expected a JSON object per line")
            if text_field not in row:
                raise RowError(path, number, text_field, f"missing field (present: {', '.join(row) or 'none'}); "
                                                         f"choose the text field with --text-field")
            text = row[text_field]
            if text is None:
                continue
            if not isinstance(text, str):
                raise RowError(path, number, text_field, f"expected a string, got {type(text).__name__}")
            doc_id = row.get(id_field)
            yield number, (None if doc_id is None else str(doc_id)), text


def _txt(path: str, text_field: str, id_field: str) -> Iterator[tuple[int, str | None, str]]:
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise RowError(path, number, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
            if text:
                yield number, None, text


def _parquet(path: str, text_field: str, id_field: str) -> Iterator[tuple[int, str | None, str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from exc
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own error types for a damaged file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    names = parquet.schema_arrow.names
    if text_field not in names:
        raise DataError(f"{path}: no column '{text_field}' (columns: {', '.join(names)}); "
                        f"choose the text field with --text-field")
    columns = [text_field] + ([id_field] if id_field in names and id_field != text_field else [])
    number = 0
    for record_batch in parquet.iter_batches(batch_size=8192, columns=columns):
        texts = record_batch.column(text_field).to_pylist()
        ids = record_batch.column(id_field).to_pylist() if len(columns) == 2 else [None] * len(texts)
        for text, doc_id in zip(texts, ids):
            number += 1
            if text is None:
                continue
            if not isinstance(text, str):
                raise RowError(path, number, text_field, f"expected a string, got {type(text).__name__}")
            yield number, (None if doc_id is None else str(doc_id)), text
