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
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate
from pathlib import Path
from typing import IO

from lmaudit.contamination.normalize import join_utf8
from lmaudit.core.errors import DataError, RowError

try:  # JSON parsing is most of a scan's time; orjson parses text-heavy lines 2-3x faster than json
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - same results, slower
    from json import loads as _loads

FORMATS = {".jsonl": "jsonl", ".txt": "txt", ".parquet": "parquet"}
BATCH_CHARS = 4 << 20
READ_BYTES = 4 << 20  # lines are read and parsed in blocks of about this many bytes


PIECE_BYTES = 64 << 20  # with several workers, uncompressed text files above this are scanned in pieces this big


@dataclass(frozen=True)
class Shard:
    """One corpus file, or a piece of one: bytes [start, end) of an uncompressed JSONL or text file, cut at
    line boundaries, whose first line is line `first_line` of the file."""

    path: str
    format: str  # jsonl, txt or parquet
    size: int  # bytes on disk (of the whole file)
    start: int = 0
    end: int | None = None  # None: to the end of the file
    first_line: int = 1


@dataclass
class Batch:
    """Consecutive documents of one shard: `lines[i]` is the 1-based line (or Parquet row) of `texts[i]`."""

    source: str
    lines: list[int] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)  # the id field's value, when the corpus has one
    texts: list[str] = field(default_factory=list)
    chars: int = 0
    _utf8: tuple[bytes, int] | None = field(default=None, repr=False, compare=False)

    def add(self, line: int, doc_id: str | None, text: str) -> None:
        self.lines.append(line)
        self.ids.append(doc_id)
        self.texts.append(text)
        self.chars += len(text)
        self._utf8 = None

    def extend(self, lines: list[int], ids: list[str | None], texts: list[str], chars: int) -> None:
        """Add documents whose texts hold `chars` characters in all."""
        self.lines += lines
        self.ids += ids
        self.texts += texts
        self.chars += chars
        self._utf8 = None

    def utf8(self) -> tuple[bytes, int]:
        """The texts' UTF-8 joined by normalize.JOINER, and the texts' UTF-8 size; computed once, for the
        throughput count and the scan's normalisation alike."""
        if self._utf8 is None:
            self._utf8 = join_utf8(self.texts)
        return self._utf8

    @property
    def text_bytes(self) -> int:
        """UTF-8 size of the texts: what throughput is measured in."""
        return self.utf8()[1]

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


def split_shards(shards: Sequence[Shard], piece_bytes: int = PIECE_BYTES) -> list[Shard]:
    """The shards with every uncompressed JSONL or text file larger than `piece_bytes` cut into pieces of about
    that size at line boundaries, in file order, so that several workers can share one large file. Gzip cannot
    be entered mid-stream and Parquet files stay whole."""
    if piece_bytes < 1:
        raise ValueError(f"piece_bytes must be positive, got {piece_bytes}")
    pieces: list[Shard] = []
    for shard in shards:
        if shard.format == "parquet" or shard.path.endswith(".gz") or shard.size <= piece_bytes:
            pieces.append(shard)
        else:
            pieces.extend(_cut(shard, piece_bytes))
    return pieces


def _cut(shard: Shard, piece_bytes: int) -> list[Shard]:
    pieces = []
    start, line = 0, 1
    try:
        with open(shard.path, "rb") as handle:
            while start < shard.size:
                handle.seek(start + piece_bytes)
                handle.readline()  # the line the cut falls in stays in this piece
                end = min(handle.tell(), shard.size)
                pieces.append(replace(shard, start=start, end=end, first_line=line))
                handle.seek(start)
                remaining = end - start
                while remaining:  # count the piece's lines: the next piece's first line number
                    block = handle.read(min(remaining, 16 << 20))
                    line += block.count(b"\n")
                    remaining -= len(block)
                start = end
    except OSError as exc:
        raise DataError(f"{shard.path}: cannot be read ({exc})") from exc
    return pieces


def _open_binary(path: str) -> IO[bytes]:
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def read_batches(shard: Shard, *, text_field: str = "text", id_field: str = "id",
                 batch_chars: int = BATCH_CHARS) -> Iterator[Batch]:
    """Documents of one shard in batches; a malformed line raises a RowError naming file, line and field.

    A batch ends with the first document that brings it to `batch_chars` characters or more."""
    reader = {"jsonl": _jsonl, "txt": _txt, "parquet": _parquet_chunks}[shard.format]
    batch = Batch(shard.path)
    try:
        for lines, ids, texts in reader(shard, text_field, id_field):
            totals = list(accumulate(map(len, texts)))  # characters of texts[0..i]
            start = 0
            while start < len(texts):
                before = totals[start - 1] if start else 0
                last = bisect_left(totals, batch_chars - batch.chars + before, lo=start)
                if last >= len(texts):
                    batch.extend(lines[start:], ids[start:], texts[start:], totals[-1] - before)
                    break
                batch.extend(lines[start:last + 1], ids[start:last + 1], texts[start:last + 1],
                             totals[last] - before)
                yield batch
                batch = Batch(shard.path)
                start = last + 1
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{shard.path}: cannot be read ({exc})") from exc
    if batch.texts:
        yield batch


Chunk = tuple[list[int], list["str | None"], list[str]]  # line numbers, ids and texts of consecutive documents


def _line_blocks(shard: Shard) -> Iterator[tuple[int, list[bytes]]]:
    """The shard's lines in blocks of about READ_BYTES (line ends removed), each with its first line number.

    A piece [start, end) holds the lines that start before `end`, so a piece whose end falls inside a line
    (pieces from split_shards never do) still reads that line to its end."""
    with _open_binary(shard.path) as handle:
        if shard.start:
            handle.seek(shard.start)
        remaining = None if shard.end is None else shard.end - shard.start
        number, carry = shard.first_line, b""
        while remaining is None or remaining > 0:
            block = handle.read(READ_BYTES if remaining is None else min(READ_BYTES, remaining))
            if not block:
                break
            if remaining is not None:
                remaining -= len(block)
                if remaining <= 0 and not block.endswith(b"\n"):
                    block += handle.readline()
            lines = block.split(b"\n")
            lines[0] = carry + lines[0]
            carry = lines.pop()  # the part after the last line end: the start of the next line
            yield number, lines
            number += len(lines)
        if carry:
            yield number, [carry]


def _jsonl(shard: Shard, text_field: str, id_field: str) -> Iterator[Chunk]:
    for first, raws in _line_blocks(shard):
        # Fast path: a block of well-formed lines parses in one C loop; anything unusual in it (a blank line,
        # a value orjson refuses, a non-object, a missing or non-string text) sends the block line by line
        # through the checks below, which give the same documents or name the bad line.
        try:
            rows = list(map(_loads, raws))
            texts = [row[text_field] for row in rows]
        except (ValueError, KeyError, TypeError):
            rows = None
        if rows is None or set(map(type, texts)) - {str}:
            yield _jsonl_checked(shard.path, first, raws, text_field, id_field)
            continue
        ids = [row.get(id_field) for row in rows]
        if set(map(type, ids)) - {str, type(None)}:
            ids = [None if doc_id is None else str(doc_id) for doc_id in ids]
        yield list(range(first, first + len(raws))), ids, texts


def _jsonl_checked(path: str, first: int, raws: list[bytes], text_field: str, id_field: str) -> Chunk:
    chunk: Chunk = ([], [], [])
    for number, raw in enumerate(raws, start=first):
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
        chunk[0].append(number)
        chunk[1].append(None if doc_id is None else str(doc_id))
        chunk[2].append(text)
    return chunk


def _txt(shard: Shard, text_field: str, id_field: str) -> Iterator[Chunk]:
    for first, raws in _line_blocks(shard):
        try:
            texts = [text.rstrip("\r") for text in b"\n".join(raws).decode("utf-8").split("\n")]
        except UnicodeDecodeError:
            texts = None  # decoded line by line below, to name the line
        if texts is None or len(texts) != len(raws) or not all(texts):
            yield _txt_checked(shard.path, first, raws)
            continue
        yield list(range(first, first + len(raws))), [None] * len(raws), texts


def _txt_checked(path: str, first: int, raws: list[bytes]) -> Chunk:
    chunk: Chunk = ([], [], [])
    for number, raw in enumerate(raws, start=first):
        try:
            text = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as exc:
            raise RowError(path, number, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        if text:
            chunk[0].append(number)
            chunk[1].append(None)
            chunk[2].append(text)
    return chunk


def _parquet_chunks(shard: Shard, text_field: str, id_field: str) -> Iterator[Chunk]:
    chunk: Chunk = ([], [], [])
    for number, doc_id, text in _parquet(shard, text_field, id_field):
        chunk[0].append(number)
        chunk[1].append(doc_id)
        chunk[2].append(text)
        if len(chunk[0]) >= 8192:
            yield chunk
            chunk = ([], [], [])
    if chunk[0]:
        yield chunk


def _parquet(shard: Shard, text_field: str, id_field: str) -> Iterator[tuple[int, str | None, str]]:
    path = shard.path
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
