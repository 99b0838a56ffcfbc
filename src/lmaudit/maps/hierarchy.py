"""Knowledge hierarchies: which area each group value (an MMLU subject, a TruthfulQA category) belongs to.

A hierarchy maps the values of one record metadata key (`key`) to a path of areas above them; the values are
the leaves. Built in: MMLU (57 subjects in the 17 subcategories and 4 categories of the MMLU paper), TruthfulQA
(its 38 categories, the "Confusion: People" kind grouped under their prefix) and JBB-Behaviors (10 harm
categories). A user's TOML or JSON file gives the same mapping; a model can propose one (maps/induce.py).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError, DataError, UnknownNameError

UNMAPPED = "(not in hierarchy)"

# The MMLU paper's grouping (Hendrycks et al. 2021, its categories file): subcategory -> subjects, and
# category -> subcategories. It differs from the `category` field lmaudit's MMLU records carry, which follows
# lm-eval's four groups (lm-eval files anatomy under STEM, the paper under health / other).
MMLU_SUBCATEGORIES = {
    "math": "abstract_algebra college_mathematics elementary_mathematics high_school_mathematics "
            "high_school_statistics",
    "health": "anatomy clinical_knowledge college_medicine human_aging medical_genetics nutrition "
              "professional_medicine virology",
    "physics": "astronomy college_physics conceptual_physics high_school_physics",
    "business": "business_ethics management marketing",
    "biology": "college_biology high_school_biology",
    "chemistry": "college_chemistry high_school_chemistry",
    "computer science": "college_computer_science computer_security high_school_computer_science "
                        "machine_learning",
    "economics": "econometrics high_school_macroeconomics high_school_microeconomics",
    "engineering": "electrical_engineering",
    "philosophy": "formal_logic logical_fallacies moral_disputes moral_scenarios philosophy world_religions",
    "other": "global_facts miscellaneous professional_accounting",
    "history": "high_school_european_history high_school_us_history high_school_world_history prehistory",
    "geography": "high_school_geography",
    "politics": "high_school_government_and_politics public_relations security_studies us_foreign_policy",
    "psychology": "high_school_psychology professional_psychology",
    "culture": "human_sexuality sociology",
    "law": "international_law jurisprudence professional_law",
}
MMLU_CATEGORIES = {
    "STEM": ("physics", "chemistry", "biology", "computer science", "math", "engineering"),
    "humanities": ("history", "philosophy", "law"),
    "social sciences": ("politics", "culture", "economics", "geography", "psychology"),
    "other (business, health, misc.)": ("other", "business", "health"),
}

TRUTHFULQA_CATEGORIES = (
    "Advertising", "Confusion: Other", "Confusion: People", "Confusion: Places", "Conspiracies", "Distraction",
    "Economics", "Education", "Fiction", "Finance", "Health", "History", "Indexical Error: Identity",
    "Indexical Error: Location", "Indexical Error: Other", "Indexical Error: Time", "Language", "Law",
    "Logical Falsehood", "Mandela Effect", "Misconceptions", "Misconceptions: Topical", "Misinformation",
    "Misquotations", "Myths and Fairytales", "Nutrition", "Paranormal", "Politics", "Proverbs", "Psychology",
    "Religion", "Science", "Sociology", "Statistics", "Stereotypes", "Subjective", "Superstitions", "Weather",
)

JBB_CATEGORIES = (
    "Harassment/Discrimination", "Malware/Hacking", "Physical harm", "Economic harm", "Fraud/Deception",
    "Disinformation", "Sexual/Adult content", "Privacy", "Expert advice", "Government decision-making",
)


@dataclass(frozen=True)
class Hierarchy:
    """`paths[value]` is the tuple of areas above the leaf `value`, outermost first (the root is implied)."""

    name: str
    key: str
    paths: Mapping[str, tuple[str, ...]]
    source: str

    def path_of(self, value: str) -> tuple[str, ...]:
        """The full path of a leaf; values the hierarchy does not know sit under one UNMAPPED area."""
        return (*self.paths[value], value) if value in self.paths else (UNMAPPED, value)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "paths": {v: list(p) for v, p in self.paths.items()}}


def mmlu() -> Hierarchy:
    # insertion order is the map's drawing order: the paper's categories, then their subcategories
    paths = {subject: (category, sub) for category, subs in MMLU_CATEGORIES.items() for sub in subs
             for subject in MMLU_SUBCATEGORIES[sub].split()}
    return Hierarchy("MMLU (categories and subcategories of the MMLU paper)", "subject", paths, "builtin:mmlu")


def truthfulqa() -> Hierarchy:
    prefixes = {c.split(": ")[0] for c in TRUTHFULQA_CATEGORIES if ": " in c}
    paths = {}
    for category in TRUTHFULQA_CATEGORIES:
        head = category.split(": ")[0]
        paths[category] = (head,) if head in prefixes else ()
    return Hierarchy("TruthfulQA categories", "category", paths, "builtin:truthfulqa")


def jbb() -> Hierarchy:
    return Hierarchy("JBB-Behaviors harm categories", "category", {c: () for c in JBB_CATEGORIES}, "builtin:jbb")


BUILTIN = {"mmlu": mmlu, "truthfulqa": truthfulqa, "jbb": jbb}


def builtin(name: str) -> Hierarchy:
    if name not in BUILTIN:
        raise UnknownNameError("hierarchy", name, list(BUILTIN))
    return BUILTIN[name]()


def flat(key: str, values: Iterable[str]) -> Hierarchy:
    """Every value directly under the root: the map of a dataset that has no hierarchy."""
    return Hierarchy(f"{key} (flat)", key, {v: () for v in sorted(set(values))}, f"flat:{key}")


def _path(value: Any, where: str, separator: str) -> tuple[str, ...]:
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(separator)] if value.strip() else []
    elif isinstance(value, list) and all(isinstance(p, str) for p in value):
        parts = [p.strip() for p in value]
    else:
        raise DataError(f"{where}: expected a path string ('area{separator}subarea') or a list of strings, "
                        f"got {value!r}")
    if any(not p for p in parts):
        raise DataError(f"{where}: empty area name in {value!r}")
    return tuple(parts)


def from_dict(raw: Any, where: str, *, source: str) -> Hierarchy:
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected a table with 'key' and 'paths', got {type(raw).__name__}")
    for field in ("key", "paths"):
        if field not in raw:
            raise DataError(f"{where}: missing field '{field}' (the metadata key of the leaves, and "
                            f"paths = {{value = 'area/subarea'}})")
    if not isinstance(raw["key"], str) or not raw["key"]:
        raise DataError(f"{where}, field 'key': expected a metadata key such as 'subject', got {raw['key']!r}")
    if not isinstance(raw["paths"], dict) or not raw["paths"]:
        raise DataError(f"{where}, field 'paths': expected a non-empty table of value = path")
    separator = raw.get("separator", "/")
    if not isinstance(separator, str) or not separator:
        raise DataError(f"{where}, field 'separator': expected a non-empty string, got {separator!r}")
    paths = {str(value): _path(path, f"{where}, paths.{value}", separator) for value, path in raw["paths"].items()}
    return Hierarchy(str(raw.get("name", Path(where).stem)), raw["key"], paths, source)


def load(path: str | Path) -> Hierarchy:
    """A hierarchy file: TOML or JSON with `key`, `paths` (value -> "area/subarea" or a list) and optional
    `name` and `separator`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"hierarchy file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise DataError(f"{path}: not valid TOML ({exc})") from None
    elif path.suffix.lower() == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    else:
        raise ConfigError(f"hierarchy file {path}: expected a .toml or .json file")
    return from_dict(raw, str(path), source=str(path))


def resolve(spec: str) -> Hierarchy:
    """A built-in name or a file path."""
    if spec in BUILTIN:
        return BUILTIN[spec]()
    if spec.endswith((".toml", ".json")):
        return load(spec)
    raise UnknownNameError("hierarchy", spec, [*BUILTIN, "<file.toml>", "<file.json>", "auto"])


def suggest(records: Iterable[Any]) -> Hierarchy | None:
    """The built-in hierarchy whose leaves hold every value the records carry under its key, if one does."""
    records = list(records)
    for make in (mmlu, truthfulqa, jbb):
        hierarchy = make()
        values = {str(r.metadata[hierarchy.key]) for r in records if hierarchy.key in r.metadata}
        if values and values <= set(hierarchy.paths):
            return hierarchy
    return None
