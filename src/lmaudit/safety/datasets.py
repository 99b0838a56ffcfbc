"""Safety prompt sets: JBB-Behaviors (harmful, benign), AdvBench, XSTest, or a user's own table.

Each prompt becomes a core Sample: data["goal"] is the request, metadata["category"] the harm category
(XSTest: the prompt type), target the dataset's affirmative target string where it has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError, RowError, UnknownNameError
from lmaudit.core.hashing import file_digest
from lmaudit.core.types import Sample
from lmaudit.data.tables import Row, find_dataset, read_rows, require_field


@dataclass(frozen=True)
class _Source:
    relative: str
    harmful: bool
    id: str | None  # column; None: the row's position
    goal: str
    category: str | None  # column; None: every row is in one category named after the set
    target: str | None = None
    keep: tuple[str, str] | None = None  # (column, value): rows to keep
    extra: tuple[str, ...] = ()  # columns copied into metadata


DATASETS: dict[str, _Source] = {
    "jbb": _Source("jbb/harmful_behaviors.csv", True, "Index", "Goal", "Category", "Target", None,
                   ("Behavior", "Source")),
    "jbb-benign": _Source("jbb/benign_behaviors.csv", False, "index", "goal", "category", "target", None,
                          ("behavior", "source")),
    "advbench": _Source("advbench/harmful_behaviors.csv", True, None, "goal", None, "target"),
    "xstest": _Source("xstest/xstest_prompts.csv", False, "id", "prompt", "type", None, ("label", "safe"),
                      ("focus", "note")),
    "xstest-unsafe": _Source("xstest/xstest_prompts.csv", True, "id", "prompt", "type", None, ("label", "unsafe"),
                             ("focus", "note")),
}
HOW_TO_GET = {
    "jbb": "JBB-Behaviors: huggingface.co/datasets/JailbreakBench/JBB-Behaviors",
    "advbench": "AdvBench: github.com/llm-attacks/llm-attacks (data/advbench)",
    "xstest": "XSTest: github.com/paul-rottger/exaggerated-safety",
}


@dataclass(frozen=True)
class PromptSet:
    name: str
    path: Path
    harmful: bool | None  # None for a user's file: the caller decides what it holds
    samples: list[Sample]

    def require(self, harmful: bool) -> None:
        """Refuse a set of the wrong kind: red-teaming needs harmful prompts, over-refusal benign ones."""
        if harmful and self.harmful is False:
            raise ConfigError(f"dataset '{self.name}' holds benign prompts; red-team a harmful set "
                              f"(jbb, advbench, xstest-unsafe) or measure over-refusal on it")
        if not harmful and self.harmful:
            raise ConfigError(f"dataset '{self.name}' holds harmful prompts; over-refusal is measured on benign "
                              f"ones (jbb-benign, xstest)")

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "sha256": file_digest(self.path), "n": len(self.samples)}


def load_prompts(name: str, *, data_dir: str | Path | None = None) -> PromptSet:
    """A named set (see DATASETS) or a table file with a `goal` (or `prompt`) column and optional
    `id` and `category` columns."""
    if name in DATASETS:
        source = DATASETS[name]
        family = name.split("-")[0]
        path = find_dataset(family.upper(), source.relative, data_dir=data_dir, how_to_get=HOW_TO_GET[family])
        return PromptSet(name, path, source.harmful, _read(path, source, name))
    path = Path(name)
    if path.suffix.lower() not in {".csv", ".tsv", ".jsonl", ".json", ".parquet", ".gz"}:
        raise UnknownNameError("dataset", name, list(DATASETS) + ["<path to .csv/.jsonl/...>"])
    if not path.is_file():
        raise ConfigError(f"dataset file not found: {path}")
    rows = list(read_rows(path))
    if not rows:
        raise ConfigError(f"dataset file {path} has no rows")
    goal_column = "goal" if "goal" in rows[0].values else "prompt"
    source = _Source(str(path), True, "id" if "id" in rows[0].values else None, goal_column,
                     "category" if "category" in rows[0].values else None)
    return PromptSet(path.stem, path, None, _read(path, source, path.stem, rows))


def _read(path: Path, source: _Source, name: str, rows: list[Row] | None = None) -> list[Sample]:
    samples = []
    seen: dict[str, int] = {}
    for position, row in enumerate(rows if rows is not None else read_rows(path)):
        if source.keep and require_field(row, source.keep[0]) != source.keep[1]:
            continue
        goal = str(require_field(row, source.goal, (str, int, float))).strip()
        if not goal:
            raise RowError(row.path, row.line, source.goal, "empty request")
        ident = str(require_field(row, source.id, (str, int))).strip() if source.id else str(position)
        if ident in seen:
            raise RowError(row.path, row.line, source.id, f"id '{ident}' already used on line {seen[ident]}")
        seen[ident] = row.line
        category = str(require_field(row, source.category, (str, int))) if source.category else name
        metadata = {"category": category, **{column.lower(): row.values.get(column) for column in source.extra}}
        target = row.values.get(source.target) if source.target else None
        samples.append(Sample(ident, {"goal": goal}, target, metadata))
    return samples
