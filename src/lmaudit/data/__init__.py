"""Data loading: tables from local files with row-level errors, where datasets are looked for, and the sources a
built-in benchmark can load from (a local folder, the Hugging Face hub through `datasets`, a shipped sample)."""

from lmaudit.data.hub import HubDataset, hub_snapshot, load_hub_rows
from lmaudit.data.sources import DataSource, load_from_hub, parse_source, resolve_file
from lmaudit.data.tables import Row, find_dataset, read_rows, require_field

__all__ = ["DataSource", "HubDataset", "Row", "find_dataset", "hub_snapshot", "load_from_hub", "load_hub_rows",
           "parse_source", "read_rows", "require_field", "resolve_file"]
