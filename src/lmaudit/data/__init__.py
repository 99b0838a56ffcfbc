"""Data loading: tables from local files with row-level errors, and where datasets are looked for."""

from lmaudit.data.tables import Row, find_dataset, read_rows, require_field

__all__ = ["Row", "find_dataset", "read_rows", "require_field"]
