"""The evaluation side of a contamination check: one text per benchmark item, keyed as SampleRecords are."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lmaudit.core.errors import DataError
from lmaudit.core.types import Sample
from lmaudit.runner.evaluate import select_samples
from lmaudit.tasks.base import Task

# The field that holds an item's question or context, by task shape; answers and choices are never used.
TEXT_FIELDS = ("question", "prompt", "text", "context")


@dataclass(frozen=True)
class EvalItem:
    task: str
    sample_id: str
    text: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.task, self.sample_id)


def item_text(task_name: str, sample: Sample) -> str:
    for name in TEXT_FIELDS:
        value = sample.data.get(name)
        if isinstance(value, str):
            return value
    raise DataError(f"task {task_name}, sample {sample.id}: no question/context field to check "
                    f"(looked for {', '.join(TEXT_FIELDS)}; it has {', '.join(sample.data) or 'no fields'})")


def items_from_tasks(tasks: Sequence[Task], limit: int | None = None) -> list[EvalItem]:
    """The samples of every task in task then sample order; `limit` picks the same samples as `evaluate`."""
    items: list[EvalItem] = []
    for task in tasks:
        samples = select_samples(task.samples(), limit, task.group_by[0] if task.group_by else None)
        items.extend(EvalItem(task.name, sample.id, item_text(task.name, sample)) for sample in samples)
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        raise DataError("the same (task, sample id) occurs twice: list each task once")
    return items
