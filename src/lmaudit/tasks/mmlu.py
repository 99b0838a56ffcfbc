"""MMLU (Hendrycks et al.): 57 subjects, 4 options, scored by answer letter or by answer text (cloze).

The questions come from a local copy of the original CSVs (`<data dir>/mmlu/{test,dev}/<subject>_<split>.csv`),
from the Hugging Face hub (`data_source=hub`: cais/mmlu through `datasets`), or, when no data folder is set at
all, from the sample that ships inside the package (the dev split and the first test questions of every subject).
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from lmaudit.core.errors import DataError, RowError
from lmaudit.core.hashing import file_digest
from lmaudit.core.types import Sample
from lmaudit.data.hub import HubDataset
from lmaudit.data.sources import DataSource, hub_hint, load_from_hub, parse_source
from lmaudit.data.tables import DATA_ENV, Row, data_roots, find_dataset, read_rows, require_field
from lmaudit.tasks.base import ChoiceTask

LETTERS = ("A", "B", "C", "D")
HOW_TO_GET = ("Get the CSVs of the original release (github.com/hendrycks/test, data.tar: folders dev/ and test/ "
              "with <subject>_dev.csv and <subject>_test.csv) and put them under <data dir>/mmlu/.")
HUB = HubDataset("cais/mmlu", "all", ("test", "dev"))
SHIPPED = Path(__file__).parent / "files" / "mmlu"
SHIPPED_TEST_PER_SUBJECT = 10  # the shipped sample's test questions per subject (the first ones of each file)

# The four MMLU categories (as grouped in the MMLU paper's results), used as a coarser breakdown.
CATEGORIES = {
    "stem": "abstract_algebra anatomy astronomy college_biology college_chemistry college_computer_science "
            "college_mathematics college_physics computer_security conceptual_physics electrical_engineering "
            "elementary_mathematics high_school_biology high_school_chemistry high_school_computer_science "
            "high_school_mathematics high_school_physics high_school_statistics machine_learning",
    "humanities": "formal_logic high_school_european_history high_school_us_history high_school_world_history "
                  "international_law jurisprudence logical_fallacies moral_disputes moral_scenarios philosophy "
                  "prehistory professional_law world_religions",
    "social_sciences": "econometrics high_school_geography high_school_government_and_politics "
                       "high_school_macroeconomics high_school_microeconomics high_school_psychology "
                       "human_sexuality professional_psychology public_relations security_studies sociology "
                       "us_foreign_policy",
    "other": "business_ethics clinical_knowledge college_medicine global_facts human_aging management marketing "
             "medical_genetics miscellaneous nutrition professional_accounting professional_medicine virology",
}
SUBJECT_CATEGORY = {subject: category for category, names in CATEGORIES.items() for subject in names.split()}
SUBJECTS = sorted(SUBJECT_CATEGORY)
COLUMNS = ["question", "choice0", "choice1", "choice2", "choice3", "answer"]


class ShippedSampleWarning(UserWarning):
    """MMLU runs on the small sample inside the package because no data folder holds MMLU."""


class Question(NamedTuple):
    text: str
    choices: list[str]
    gold: int


def _gold(row: Row, value: Any) -> int:
    answer = str(value).strip()
    if answer in LETTERS:
        return LETTERS.index(answer)
    if answer in {"0", "1", "2", "3"}:
        return int(answer)
    raise RowError(row.path, row.line, "answer", f"expected 0-3 or A-D, got {value!r}")


def _parse_csv(path: Path) -> list[Question]:
    """Both layouts: with a header (question, choice0-3, answer 0-3) or the original (no header, letter)."""
    with open(path, encoding="utf-8") as handle:
        has_header = handle.readline().startswith("question,")
    questions = []
    for row in read_rows(path, header=has_header, columns=None if has_header else COLUMNS):
        for name in COLUMNS:
            if name not in row.values:
                raise RowError(row.path, row.line, name, "missing column")
        questions.append(Question(row.values["question"], [row.values[f"choice{i}"] for i in range(4)],
                                  _gold(row, row.values["answer"])))
    return questions


def _parse_hub(path: Path) -> dict[str, list[Question]]:
    """A hub snapshot (question, subject, choices, answer: cais/mmlu's columns) by subject, in file order."""
    by_subject: dict[str, list[Question]] = {}
    for row in read_rows(path):
        choices = require_field(row, "choices", list)
        if len(choices) != 4 or not all(isinstance(c, str) for c in choices):
            raise RowError(row.path, row.line, "choices", f"expected 4 answer texts, got {choices!r}")
        question = Question(require_field(row, "question"), choices, _gold(row, require_field(row, "answer", (int, str))))
        by_subject.setdefault(require_field(row, "subject"), []).append(question)
    return by_subject


def _header(subject: str) -> str:
    return f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"


def _letter_block(question: str, choices: list[str]) -> str:
    options = "".join(f"\n{letter}. {choice}" for letter, choice in zip(LETTERS, choices))
    return f"{question.strip()}{options}\nAnswer:"


def _cloze_block(question: str) -> str:
    return f"Question: {question.strip()}\nAnswer:"


class MMLUData:
    """The test questions and the dev examples used as few-shot shots, from one data source.

    Every file is found and hashed here, so `files` (the run identity) is complete before `samples()` runs.
    """

    def __init__(self, subjects: list[str], num_fewshot: int, data_dir: str | None,
                 data_source: str | DataSource | None = None):
        unknown = [s for s in subjects if s not in SUBJECT_CATEGORY]
        if unknown:
            raise DataError(f"unknown MMLU subject(s): {', '.join(unknown)}")
        if not 0 <= num_fewshot <= 5:
            raise DataError(f"MMLU has 5 dev examples per subject; num_fewshot={num_fewshot} is out of 0-5")
        self.subjects = subjects
        self.num_fewshot = num_fewshot
        self.source = parse_source(data_source)
        self.splits = ("test", "dev") if num_fewshot else ("test",)
        self.files: dict[str, str] = {}
        self.folder: Path | None = None
        self._hub: dict[str, dict[str, list[Question]]] = {}
        if self.source.kind == "hub":
            self._load_hub(data_dir)
        else:
            self.folder = self._find_folder(data_dir)
            for split in self.splits:
                for subject in subjects:
                    path = self._subject_file(split, subject)
                    self.files[str(path)] = file_digest(path)
        self.shots: dict[str, list[Question]] = {
            subject: self._questions("dev", subject)[:num_fewshot] for subject in subjects} if num_fewshot else {}

    @property
    def source_label(self) -> str:
        return self.source.describe(HUB)

    def _find_folder(self, data_dir: str | None) -> Path:
        if self.source.kind == "shipped":
            return SHIPPED
        try:
            folder = find_dataset("MMLU", "mmlu", data_dir=data_dir, how_to_get=f"{HOW_TO_GET} {hub_hint(HUB)}")
            self.source = DataSource("local")
            return folder
        except DataError:
            if self.source.kind == "local" or data_roots(data_dir):  # a data folder the user set must hold MMLU
                raise
        warnings.warn(ShippedSampleWarning(
            f"no data folder is set (--data-dir, ${DATA_ENV}); MMLU runs on the sample shipped with lmaudit: the "
            f"dev split and the first {SHIPPED_TEST_PER_SUBJECT} test questions of each subject. Its figures "
            f"check the pipeline, they are not MMLU scores; for the full test set set ${DATA_ENV} or use "
            "data_source=hub."), stacklevel=2)
        self.source = DataSource("shipped")
        return SHIPPED

    def _subject_file(self, split: str, subject: str) -> Path:
        assert self.folder is not None
        path = self.folder / split / f"{subject}_{split}.csv"
        if not path.exists():
            where = "lmaudit's shipped sample (reinstall lmaudit)" if self.folder == SHIPPED else HOW_TO_GET
            raise DataError(f"MMLU file missing: {path}. {where}")
        return path

    def _load_hub(self, data_dir: str | None) -> None:
        # One subject reads its own configuration; several read 'all' once and split it by the subject column.
        config = self.subjects[0] if len(self.subjects) == 1 else HUB.config
        for split in self.splits:
            path = load_from_hub("MMLU", self.source, HUB, relative="mmlu", data_dir=data_dir,
                                 how_to_get=HOW_TO_GET, config=config, splits=(split,))
            self.files[str(path)] = file_digest(path)
            self._hub[split] = _parse_hub(path)
            missing = [s for s in self.subjects if s not in self._hub[split]]
            if missing:
                raise DataError(f"MMLU: the hub snapshot {path} has no {split} questions for "
                                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")

    def _questions(self, split: str, subject: str) -> list[Question]:
        if self.source.kind == "hub":
            return self._hub[split][subject]
        return _parse_csv(self._subject_file(split, subject))

    def samples(self) -> list[Sample]:
        samples = []
        for subject in self.subjects:
            for index, (question, choices, gold) in enumerate(self._questions("test", subject)):
                samples.append(Sample(
                    id=f"{subject}/{index}", data={"question": question, "choices": choices, "subject": subject},
                    target=gold, metadata={"subject": subject, "category": SUBJECT_CATEGORY[subject]}))
        return samples

    def letter_context(self, sample: Sample) -> str:
        subject = sample.data["subject"]
        shots = "".join(f"{_letter_block(q, c)} {LETTERS[g]}\n\n" for q, c, g in self.shots.get(subject, []))
        return _header(subject) + shots + _letter_block(sample.data["question"], sample.data["choices"])

    def cloze_context(self, sample: Sample) -> str:
        subject = sample.data["subject"]
        shots = "".join(f"{_cloze_block(q)} {c[g]}\n\n" for q, c, g in self.shots.get(subject, []))
        return _header(subject) + shots + _cloze_block(sample.data["question"])


def _task(name: str, subjects: list[str], cloze: bool, num_fewshot: int = 0, data_dir: str | None = None,
          data_source: str | None = None) -> ChoiceTask:
    data = MMLUData(subjects, num_fewshot, data_dir, data_source)
    options: dict[str, Any] = {"num_fewshot": num_fewshot, "subjects": subjects if len(subjects) < 57 else "all",
                               "source": data.source_label, "data_files": data.files}
    return ChoiceTask(
        name=name,
        load=data.samples,
        context=data.cloze_context if cloze else data.letter_context,
        choices=(lambda s: s.data["choices"]) if cloze else (lambda s: list(LETTERS)),
        metrics=("acc", "acc_norm", "acc_bytes") if cloze else ("acc",),
        group_by=("subject", "category"),
        options=options,
    )


def mmlu(num_fewshot: int = 0, data_dir: str | None = None, subjects: list[str] | None = None,
         data_source: str | None = None) -> ChoiceTask:
    return _task("mmlu", subjects or SUBJECTS, cloze=False, num_fewshot=num_fewshot, data_dir=data_dir,
                 data_source=data_source)


def mmlu_cloze(num_fewshot: int = 0, data_dir: str | None = None, subjects: list[str] | None = None,
               data_source: str | None = None) -> ChoiceTask:
    return _task("mmlu_cloze", subjects or SUBJECTS, cloze=True, num_fewshot=num_fewshot, data_dir=data_dir,
                 data_source=data_source)


def mmlu_subject(subject: str, num_fewshot: int = 0, data_dir: str | None = None,
                 data_source: str | None = None) -> ChoiceTask:
    return _task(f"mmlu_{subject}", [subject], cloze=False, num_fewshot=num_fewshot, data_dir=data_dir,
                 data_source=data_source)


def subject_factories() -> dict[str, Any]:
    return {f"mmlu_{s}": partial(mmlu_subject, s) for s in SUBJECTS}
