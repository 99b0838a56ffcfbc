"""Tasks over a user's own JSONL/CSV/Parquet file, declared with options or a TOML file, no code.

    # my_task.toml
    kind = "mcq"                  # or "generate"
    name = "my_quiz"
    path = "quiz.jsonl"           # relative to the TOML file
    question = "question"         # column names
    choices = ["A", "B", "C", "D"]  # several columns, or one column holding a list
    answer = "answer"             # index (0-based), letter, or the answer's text
    style = "letters"             # "letters": score " A".." D"; "cloze": score the choice texts
    group_by = ["topic"]
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError, RowError
from lmaudit.core.hashing import file_digest
from lmaudit.core.types import Sample
from lmaudit.data.tables import Row, read_rows
from lmaudit.tasks.base import ChoiceTask, GenerateTask, Task

LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _choices_of(row: Row, choices: str | list[str], separator: str) -> list[str]:
    if isinstance(choices, list):
        missing = [c for c in choices if c not in row.values]
        if missing:
            raise RowError(row.path, row.line, missing[0], "missing choice column")
        return [str(row.values[c]) for c in choices]
    value = row.values.get(choices)
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str) and value:
        return [part.strip() for part in value.split(separator)]
    raise RowError(row.path, row.line, choices, "expected a list of choices or a separated string")


def _gold_of(row: Row, field: str, options: list[str]) -> int:
    if field not in row.values:
        raise RowError(row.path, row.line, field, "missing answer field")
    value = row.values[field]
    text = str(value).strip()
    if isinstance(value, int) or text.isdigit():
        index = int(text)
    elif len(text) == 1 and text.upper() in LABELS[: len(options)]:
        index = LABELS.index(text.upper())
    elif text in options:
        index = options.index(text)
    else:
        raise RowError(row.path, row.line, field, f"answer {value!r} is not an index, a label or one of the choices")
    if not 0 <= index < len(options):
        raise RowError(row.path, row.line, field, f"answer index {index} out of range for {len(options)} choices")
    return index


def _metadata(row: Row, group_by: list[str]) -> dict[str, Any]:
    for key in group_by:
        if key not in row.values:
            raise RowError(row.path, row.line, key, "missing group_by column")
    return {key: row.values[key] for key in group_by}


def mcq(path: str, question: str = "question", choices: str | list[str] = "choices", answer: str = "answer",
        style: str = "letters", name: str = "mcq", id: str | None = None, group_by: list[str] | None = None,
        num_fewshot: int = 0, separator: str = ";", instruction: str = "") -> ChoiceTask:
    """Multiple choice from a file; few-shot examples are the file's first rows (then excluded from scoring)."""
    if style not in {"letters", "cloze"}:
        raise ConfigError(f"mcq style must be 'letters' or 'cloze', got {style!r}")
    group_by = group_by or []
    source = Path(path)

    def load() -> list[Sample]:
        samples = []
        for number, row in enumerate(read_rows(source)):
            if question not in row.values:
                raise RowError(row.path, row.line, question, "missing question field")
            options = _choices_of(row, choices, separator)
            if len(options) < 2:
                raise RowError(row.path, row.line, str(choices), "fewer than two choices")
            samples.append(Sample(
                id=str(row.values[id]) if id else str(number),
                data={"question": str(row.values[question]), "choices": options},
                target=_gold_of(row, answer, options), metadata=_metadata(row, group_by)))
        return samples

    shots: list[Sample] = []

    def block(sample: Sample) -> str:
        if style == "cloze":
            return f"Question: {sample.data['question'].strip()}\nAnswer:"
        lines = "".join(f"\n{LABELS[i]}. {c}" for i, c in enumerate(sample.data["choices"]))
        return f"{sample.data['question'].strip()}{lines}\nAnswer:"

    def gold_text(sample: Sample) -> str:
        return sample.data["choices"][sample.target] if style == "cloze" else LABELS[sample.target]

    def load_scored() -> list[Sample]:
        everything = load()
        shots[:] = everything[:num_fewshot]
        return everything[num_fewshot:]

    def context(sample: Sample) -> str:
        prefix = "".join(f"{block(s)} {gold_text(s)}\n\n" for s in shots)
        return (f"{instruction}\n\n" if instruction else "") + prefix + block(sample)

    def choice_texts(sample: Sample) -> list[str]:
        return sample.data["choices"] if style == "cloze" else list(LABELS[: len(sample.data["choices"])])

    return ChoiceTask(
        name=name, load=load_scored, context=context, choices=choice_texts,
        metrics=("acc", "acc_norm", "acc_bytes") if style == "cloze" else ("acc",),
        group_by=tuple(group_by),
        options={"path": str(source), "style": style, "num_fewshot": num_fewshot,
                 "data_files": {str(source): file_digest(source)} if source.exists() else {}},
    )


def generate(path: str, prompt: str = "{prompt}", target: str = "target", name: str = "generate",
             id: str | None = None, chat: bool = False, max_tokens: int = 128, stop: list[str] | None = None,
             answer_pattern: str | None = None, group_by: list[str] | None = None) -> GenerateTask:
    """Generation from a file: `prompt` is a template over the row's fields; `target` a string or list column."""
    group_by = group_by or []
    source = Path(path)

    def load() -> list[Sample]:
        samples = []
        for number, row in enumerate(read_rows(source)):
            if target not in row.values:
                raise RowError(row.path, row.line, target, "missing target field")
            try:
                text = prompt.format_map(row.values)
            except KeyError as exc:
                raise RowError(row.path, row.line, exc.args[0], "the prompt template uses this field") from exc
            samples.append(Sample(id=str(row.values[id]) if id else str(number), data={"prompt": text},
                                  target=row.values[target], metadata=_metadata(row, group_by)))
        return samples

    return GenerateTask(
        name=name, load=load, prompt=lambda s: s.data["prompt"], chat=chat, max_tokens=max_tokens,
        stop=tuple(stop or ()), answer_pattern=answer_pattern, group_by=tuple(group_by),
        options={"path": str(source), "prompt": prompt,
                 "data_files": {str(source): file_digest(source)} if source.exists() else {}},
    )


def from_toml(path: str | Path, **overrides: Any) -> Task:
    """A task declared in a TOML file (see the module docstring)."""
    path = Path(path)
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"task file {path}: {exc}") from exc
    kind = spec.pop("kind", None)
    if kind not in {"mcq", "generate"}:
        raise ConfigError(f"task file {path}: 'kind' must be \"mcq\" or \"generate\", got {kind!r}")
    if "path" not in spec:
        raise ConfigError(f"task file {path}: 'path' (the data file) is required")
    spec["path"] = str((path.parent / spec["path"]).resolve())
    spec.setdefault("name", path.stem)
    if kind == "generate":
        overrides.pop("num_fewshot", None)
    try:
        return (mcq if kind == "mcq" else generate)(**spec, **overrides)
    except TypeError as exc:
        raise ConfigError(f"task file {path}: {exc}") from exc


def demo_mcq(num_fewshot: int = 0) -> ChoiceTask:
    """A tiny quiz written for this project: what the quick start runs when MMLU is not on disk."""
    return mcq(str(Path(__file__).parent / "files" / "demo_mcq.jsonl"), name="demo_mcq", id="id",
               group_by=["topic"], num_fewshot=num_fewshot)
