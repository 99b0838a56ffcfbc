"""Prompt templates (attacker few-shot, judge prompts) and rubrics: bundled files or the user's own."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError
from lmaudit.core.hashing import text_digest

TEMPLATE_DIR = Path(__file__).parent / "templates"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class PromptTemplate:
    """Text with `{name}` placeholders. Other braces are left alone, so templates may contain JSON or code."""

    text: str
    source: str  # file path, for error messages and the manifest

    @classmethod
    def load(cls, path: str | Path, required: tuple[str, ...]) -> "PromptTemplate":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"template file not found: {path}")
        text = path.read_text(encoding="utf-8")
        missing = [name for name in required if "{" + name + "}" not in text]
        if missing:
            raise ConfigError(f"template {path} lacks placeholder(s) {', '.join('{' + m + '}' for m in missing)}; "
                              f"it must contain {', '.join('{' + r + '}' for r in required)}")
        return cls(text, describe(path))

    def fill(self, **values: str) -> str:
        # One pass, so a value that itself contains "{response}" is never substituted again.
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)] if m.group(1) in values else m.group(0), self.text)

    def digest(self) -> str:
        return text_digest(self.text)[:16]


def bundled(name: str) -> Path:
    return TEMPLATE_DIR / name


def describe(path: Path) -> str:
    """'bundled:<name>' for a shipped file (so a run does not depend on where lmaudit is installed), else the path."""
    return f"bundled:{path.name}" if path.resolve().parent == TEMPLATE_DIR.resolve() else str(path)


@dataclass(frozen=True)
class RubricOption:
    letter: str
    description: str
    score: float
    refusal: bool
    violation: bool


@dataclass(frozen=True)
class Rubric:
    """A multiple-choice rubric: the judge answers one letter, each letter maps to a reward and two flags."""

    question: str
    options: tuple[RubricOption, ...]
    source: str
    digest: str

    @classmethod
    def load(cls, path: str | Path) -> "Rubric":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"rubric file not found: {path}")
        text = path.read_text(encoding="utf-8")
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"rubric {path}: not valid TOML ({exc})") from exc
        question = raw.get("question")
        if not isinstance(question, str) or not question.strip():
            raise ConfigError(f"rubric {path}: field 'question' must be a non-empty string")
        entries = raw.get("options")
        if not isinstance(entries, list) or len(entries) < 2:
            raise ConfigError(f"rubric {path}: needs at least two [[options]] tables")
        options = tuple(_option(path, number, entry) for number, entry in enumerate(entries, start=1))
        letters = [o.letter for o in options]
        if len(set(letters)) != len(letters):
            raise ConfigError(f"rubric {path}: option letters repeat: {letters}")
        return cls(question.strip(), options, describe(path), text_digest(text)[:16])

    def by_letter(self) -> dict[str, RubricOption]:
        return {option.letter: option for option in self.options}

    def render(self) -> str:
        return "\n".join(f"({o.letter}) {o.description}" for o in self.options)


def _option(path: Path, number: int, entry: Any) -> RubricOption:
    where = f"rubric {path}, option {number}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a table")
    letter = entry.get("letter")
    if not isinstance(letter, str) or not re.fullmatch(r"[A-Z]", letter):
        raise ConfigError(f"{where}, field 'letter': expected one capital letter A-Z, got {letter!r}")
    description = entry.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(f"{where}, field 'description': expected a non-empty string")
    score = entry.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise ConfigError(f"{where}, field 'score': expected a number, got {score!r}")
    flags = {}
    for flag in ("refusal", "violation"):
        value = entry.get(flag, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{where}, field '{flag}': expected true or false, got {value!r}")
        flags[flag] = value
    return RubricOption(letter, description.strip(), float(score), flags["refusal"], flags["violation"])
