"""Per-item flags with their evidence, and the flags file: JSON Lines keyed by (task, sample_id).

One line per checked item:
    {"task": "mmlu", "sample_id": "anatomy/3", "method": "substring", "contaminated": true, "score": 0.667,
     "n_documents": 2, "evidence": [{"doc_id": "...", "source": "...", "line": 17, "offset": 120, "text": "..."}],
     "note": ""}
`contaminated` is null where the item could not be judged (too short to check; Min-K% without a threshold).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from lmaudit.core.errors import DataError, RowError
from lmaudit.data.tables import read_rows


class Hit(NamedTuple):
    """An occurrence of one part (substring or n-gram) of an item in document `doc` of a batch."""

    item: int
    part: int
    doc: int
    position: int  # method-specific: a normalised character offset, or a word index


@dataclass(frozen=True)
class Evidence:
    doc_id: str
    source: str  # the corpus file
    line: int  # 1-based line of a JSONL/text file, or row of a Parquet file
    offset: int  # character offset of the match in the document's text
    text: str  # the matched text as it stands in the document


@dataclass
class Flag:
    task: str
    sample_id: str
    method: str
    contaminated: bool | None
    score: float | None  # fraction of the item's parts found; the Min-K% score for mink
    n_documents: int = 0  # documents with at least one match
    evidence: list[Evidence] = field(default_factory=list)  # the first few matching documents, in corpus order
    note: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.task, self.sample_id)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)


def write_flags(flags: Iterable[Flag], path: str | Path) -> Path:
    """Write the flags file atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for flag in flags:
            handle.write(flag.to_json() + "\n")
    os.replace(tmp, path)
    return path


_REQUIRED = {"task": str, "sample_id": str, "method": str}


def read_flags(path: str | Path) -> dict[tuple[str, str], Flag]:
    """Flags by (task, sample_id); a malformed or repeated row raises a RowError naming file, line and field."""
    path = Path(path)
    if _suffix(path) != ".jsonl":
        raise DataError(f"{path}: a flags file is JSON Lines (.jsonl), as `lmaudit contamination` writes it")
    flags: dict[tuple[str, str], Flag] = {}
    for row in read_rows(path):
        values = row.values
        for name, kind in _REQUIRED.items():
            if not isinstance(values.get(name), kind):
                raise RowError(row.path, row.line, name, f"missing or not a {kind.__name__}")
        contaminated = values.get("contaminated")
        if contaminated is not None and not isinstance(contaminated, bool):
            raise RowError(row.path, row.line, "contaminated", f"expected true, false or null, got {contaminated!r}")
        try:
            evidence = [Evidence(**e) for e in values.get("evidence") or []]
        except TypeError as exc:
            raise RowError(row.path, row.line, "evidence", f"malformed evidence ({exc})") from exc
        flag = Flag(values["task"], values["sample_id"], values["method"], contaminated, values.get("score"),
                    int(values.get("n_documents") or 0), evidence, str(values.get("note") or ""))
        if flag.key in flags:
            raise RowError(row.path, row.line, "sample_id", f"({flag.task}, {flag.sample_id}) is flagged twice")
        flags[flag.key] = flag
    return flags


def _suffix(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return suffixes[-1] if suffixes else ""


def as_flag_map(flags: Mapping[tuple[str, str], Flag] | Iterable[Flag] | str | Path) -> dict[tuple[str, str], Flag]:
    """Flags given as a file, a mapping or a list, as a mapping by (task, sample_id)."""
    if isinstance(flags, (str, Path)):
        return read_flags(flags)
    if isinstance(flags, Mapping):
        return dict(flags)
    return {flag.key: flag for flag in flags}


def summary(flags: Iterable[Flag]) -> dict[str, Any]:
    """Counts per task: checked, contaminated, not judged."""
    out: dict[str, dict[str, int]] = {}
    for flag in flags:
        counts = out.setdefault(flag.task, {"items": 0, "contaminated": 0, "clean": 0, "not_judged": 0})
        counts["items"] += 1
        key = "not_judged" if flag.contaminated is None else ("contaminated" if flag.contaminated else "clean")
        counts[key] += 1
    return out
