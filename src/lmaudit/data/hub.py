"""Benchmarks from the Hugging Face hub, through `datasets`, kept as local JSONL snapshots.

`load_dataset` does the fetching and its own caching (and honours HF_HUB_OFFLINE / HF_DATASETS_OFFLINE). The
rows it returns are written once to a JSONL file under lmaudit's cache, and the benchmark reads that file the
way it reads a local copy: its content digest goes into the run manifest (a resumed run is refused if the hub
data changed), and a malformed row is reported with the snapshot's file and line, which a user can open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmaudit.core.errors import DataError
from lmaudit.core.hashing import cache_dir
from lmaudit.core.output import dumps, write_text_atomic


@dataclass(frozen=True)
class HubDataset:
    """A benchmark's home on the hub: the dataset id, the configuration and the splits it reads, in order."""

    id: str
    config: str | None
    splits: tuple[str, ...]


def _first_line(exc: BaseException, with_cause: bool = True) -> str:
    """The exception's type and first line, and its cause's (datasets wraps the informative error)."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if with_cause and cause is not None:
        line += f" ({_first_line(cause, with_cause=False)})"
    return line


def load_hub_rows(name: str, dataset: str, config: str | None, split: str, *, revision: str | None = None,
                  fallback: str = "") -> list[dict[str, Any]]:
    """One split of a hub dataset (an id, or a local folder laid out like one) as a list of dicts."""
    try:
        import datasets
    except ImportError as exc:
        raise DataError(f"{name}: loading from the Hugging Face hub needs the datasets package "
                        f"(pip install 'lmaudit[hub]'). {fallback}".strip()) from exc
    where = f"'{dataset}'" + (f" (config '{config}'" if config else " (") + f", split '{split}'" + \
        (f", revision '{revision}')" if revision else ")")
    try:
        loaded = datasets.load_dataset(dataset, config, split=split, revision=revision)
    except Exception as exc:  # network, authentication, unknown id/config/split: all one message
        raise DataError(f"{name}: could not load {where} from the Hugging Face hub: {_first_line(exc)}. "
                        f"{fallback}".strip()) from exc
    return loaded.to_list()


def snapshot_path(dataset: str, config: str | None, splits: tuple[str, ...], revision: str | None) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "--", dataset).strip("-.") or "dataset"
    if revision:
        slug += "@" + re.sub(r"[^A-Za-z0-9._-]+", "-", revision)
    return cache_dir() / "datasets" / slug / f"{config or 'default'}-{'+'.join(splits)}.jsonl"


def hub_snapshot(name: str, dataset: str, config: str | None, splits: tuple[str, ...], *,
                 revision: str | None = None, fallback: str = "") -> Path:
    """Load `splits` of a hub dataset and write their rows, in split order, to one JSONL snapshot file.

    The file is rewritten only when the rows changed, so its digest (and mtime) stay put across runs.
    """
    rows = [row for split in splits
            for row in load_hub_rows(name, dataset, config, split, revision=revision, fallback=fallback)]
    if not rows:
        raise DataError(f"{name}: '{dataset}' has no rows in split(s) {', '.join(splits)}")
    text = "".join(dumps(row, indent=None) + "\n" for row in rows)
    path = snapshot_path(dataset, config, splits, revision)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
    return path
