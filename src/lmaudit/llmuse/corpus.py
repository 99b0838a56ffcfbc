"""Target corpora: documents with their text, group (arXiv category, venue) and period (month, year).

A table file (.csv, .tsv, .jsonl, .json, .parquet, optionally gzipped) is read with `lmaudit.data.read_rows`, so
a bad row is named by file, line and column. A list-valued group column (arXiv's "['cs.CL', 'cs.LG']") groups by
its first element, the primary category; `group_prefix` cuts a group at its first dot (cs.CL -> cs). Dates are
ISO (2025-05-31, 2025-05, 2025) and fall into periods of a day, a month, a quarter or a year.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from lmaudit.core.errors import ConfigError, DataError, RowError, UnknownNameError
from lmaudit.data import read_rows

PERIODS = ("day", "month", "quarter", "year")
_DATE = re.compile(r"^\s*(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?")


@dataclass
class Documents:
    texts: list[str] = field(default_factory=list)
    groups: list[str | None] = field(default_factory=list)
    periods: list[str | None] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, keep: list[int]) -> "Documents":
        return Documents([self.texts[i] for i in keep], [self.groups[i] for i in keep],
                         [self.periods[i] for i in keep], self.source)


def period_of(value: str, period: str) -> str | None:
    """'2025-05-31' -> '2025-05' (month), '2025-Q2' (quarter), '2025' (year), '2025-05-31' (day)."""
    match = _DATE.match(value)
    if not match:
        return None
    year, month, day = match.group(1), match.group(2), match.group(3)
    if period == "year":
        return year
    if month is None or not 1 <= int(month) <= 12:
        return None
    if period == "quarter":
        return f"{year}-Q{(int(month) - 1) // 3 + 1}"
    if period == "month":
        return f"{year}-{int(month):02d}"
    return f"{year}-{int(month):02d}-{int(day):02d}" if day else None


def group_of(value: object, prefix: bool) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    elif isinstance(value, str) and value.strip().startswith("["):
        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, (list, tuple)):
            value = parsed[0] if parsed else None
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    return text.split(".", 1)[0] if prefix else text


def read_documents(path: str | Path, *, text_column: str, group_column: str | None = None,
                   date_column: str | None = None, period: str = "month", group_prefix: bool = False,
                   groups: list[str] | None = None) -> Documents:
    """Documents of a table file; `groups` keeps only those groups (each must have at least one document)."""
    if period not in PERIODS:
        raise UnknownNameError("period", period, list(PERIODS))
    docs = Documents(source=str(path))
    for row in read_rows(path):
        values = row.values
        for column in (text_column, group_column, date_column):
            if column is not None and column not in values:
                raise RowError(row.path, row.line, column, f"no such column (columns: {', '.join(values)})")
        text = values[text_column]
        if text is None or not str(text).strip():
            continue
        group = group_of(values[group_column], group_prefix) if group_column else None
        if group_column and group is None:
            raise RowError(row.path, row.line, group_column, "empty group")
        when = None
        if date_column:
            when = period_of(str(values[date_column] or ""), period)
            if when is None:
                raise RowError(row.path, row.line, date_column,
                               f"not a date (expected YYYY-MM-DD, YYYY-MM or YYYY; got {values[date_column]!r})")
        if groups and group not in groups:
            continue
        docs.texts.append(str(text))
        docs.groups.append(group)
        docs.periods.append(when)
    if groups:
        if not group_column:
            raise ConfigError("--groups needs --group-column")
        missing = sorted(set(groups) - set(docs.groups))
        if missing:
            raise DataError(f"{path}: group(s) {', '.join(missing)} have no documents in column '{group_column}'")
    if not docs.texts:
        raise DataError(f"{path}: no documents with text in column '{text_column}'")
    return docs
