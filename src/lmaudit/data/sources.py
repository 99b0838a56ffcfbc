"""Where a built-in benchmark's data comes from: a local folder, the Hugging Face hub, or a sample lmaudit ships.

    data_source=auto            the data folder (--data-dir, else $LMAUDIT_DATA_DIR); MMLU falls back to its
                                shipped sample when neither holds it (the default)
    data_source=local           the data folder only
    data_source=shipped         the sample inside the package (MMLU only)
    data_source=hub             the benchmark's own dataset on the Hugging Face hub, through `datasets`
    data_source=hub:ID[@REV]    another hub dataset id (or a folder laid out like a hub dataset), at a revision
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lmaudit.core.errors import ConfigError, UnknownNameError
from lmaudit.data.hub import HubDataset, hub_snapshot
from lmaudit.data.tables import data_roots, find_dataset

KINDS = ("auto", "local", "shipped", "hub")


@dataclass(frozen=True)
class DataSource:
    kind: str  # one of KINDS
    dataset: str | None = None  # hub only: a dataset id or folder; None means the benchmark's own id
    revision: str | None = None  # hub only: a branch, tag or commit

    def describe(self, hub: HubDataset | None = None) -> str:
        """The source as the manifest records it: 'local', 'shipped' or 'hub:<id>[@revision]'."""
        if self.kind != "hub":
            return self.kind
        dataset = self.dataset or (hub.id if hub else "")
        return f"hub:{dataset}" + (f"@{self.revision}" if self.revision else "")


def parse_source(value: str | DataSource | None) -> DataSource:
    """A `data_source` option as given on the command line (None or '' is auto)."""
    if isinstance(value, DataSource):
        return value
    text = (value or "auto").strip()
    kind, colon, rest = text.partition(":")
    if kind == "hub":
        dataset, at, revision = rest.rpartition("@") if "@" in rest else (rest, "", "")
        if colon and not dataset.strip():
            raise ConfigError(f"data_source={text!r}: give a dataset id after 'hub:' (e.g. hub:cais/mmlu), "
                              "or plain 'hub' for the benchmark's own")
        if at and not revision.strip():
            raise ConfigError(f"data_source={text!r}: give a revision after '@', or drop the '@'")
        return DataSource("hub", dataset.strip() or None, revision.strip() or None)
    if colon or text not in KINDS:
        raise UnknownNameError("data_source", text, [*KINDS, "hub:<dataset id>[@revision]"])
    return DataSource(text)


def hub_hint(hub: HubDataset) -> str:
    return f"Or load it from the Hugging Face hub: --task-arg data_source=hub ({hub.id}; needs `pip install datasets`)."


def local_copy(relative: str, data_dir: str | Path | None) -> Path | None:
    """The local file or folder `relative` if a data folder holds it, else None."""
    return next((root / relative for root in data_roots(data_dir) if (root / relative).exists()), None)


def load_from_hub(name: str, source: DataSource, hub: HubDataset, *, relative: str,
                  data_dir: str | Path | None, how_to_get: str, config: str | None = None,
                  splits: tuple[str, ...] | None = None) -> Path:
    """The hub snapshot of `hub` (or the dataset `source` names); a failure says what a local copy needs."""
    local = local_copy(relative, data_dir)
    if local is not None:
        fallback = f"A local copy is at {local}: drop data_source=hub to use it."
    else:
        fallback = (f"For a local copy instead, drop data_source=hub and point $LMAUDIT_DATA_DIR (or --data-dir) "
                    f"at a folder with '{relative}'. {how_to_get}")
    return hub_snapshot(name, source.dataset or hub.id, config or hub.config, splits or hub.splits,
                        revision=source.revision, fallback=fallback)


def resolve_file(name: str, data_source: str | DataSource | None, hub: HubDataset, *, relative: str,
                 data_dir: str | Path | None, how_to_get: str) -> tuple[Path, DataSource]:
    """The one file a single-file benchmark reads (TruthfulQA, HumanEval, MBPP) and the source it came from."""
    source = parse_source(data_source)
    if source.kind == "shipped":
        raise ConfigError(f"{name} has no sample shipped with lmaudit; data_source is auto, local, hub or "
                          "hub:<dataset id>")
    if source.kind == "hub":
        return load_from_hub(name, source, hub, relative=relative, data_dir=data_dir, how_to_get=how_to_get), source
    path = find_dataset(name, relative, data_dir=data_dir, how_to_get=f"{how_to_get} {hub_hint(hub)}".strip())
    return path, DataSource("local")
