"""Tasks: the contract, generic shapes, built-in benchmarks and a registry."""

from lmaudit.tasks.base import (
    ChoiceTask,
    GenerateTask,
    Task,
    choice_scores,
    get_task,
    register_task,
    task_entries,
    task_names,
)
from lmaudit.tasks.custom import from_toml

__all__ = ["ChoiceTask", "GenerateTask", "Task", "choice_scores", "from_toml", "get_task", "register_task",
           "task_entries", "task_names"]
