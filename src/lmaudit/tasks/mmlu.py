"""MMLU (Hendrycks et al.): 57 subjects, 4 options, scored by answer letter or by answer text (cloze)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from lmaudit.core.errors import DataError, RowError
from lmaudit.core.hashing import file_digest
from lmaudit.core.types import Sample
from lmaudit.data.tables import Row, find_dataset, read_rows
from lmaudit.tasks.base import ChoiceTask

LETTERS = ("A", "B", "C", "D")
HOW_TO_GET = ("Get the CSVs of the original release (github.com/hendrycks/test, data.tar: folders dev/ and test/ "
              "with <subject>_dev.csv and <subject>_test.csv) and put them under <data dir>/mmlu/.")

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


def _parse_rows(path: Path) -> list[tuple[Row, str, list[str], int]]:
    """Both layouts: with a header (question, choice0-3, answer 0-3) or the original (no header, letter)."""
    with open(path, encoding="utf-8") as handle:
        first = handle.readline()
    has_header = first.startswith("question,")
    names = None if has_header else ["question", "choice0", "choice1", "choice2", "choice3", "answer"]
    parsed = []
    for row in read_rows(path, header=has_header, columns=names):
        values = row.values
        for name in ("question", "choice0", "choice1", "choice2", "choice3", "answer"):
            if name not in values:
                raise RowError(row.path, row.line, name, "missing column")
        answer = values["answer"].strip()
        if answer in LETTERS:
            gold = LETTERS.index(answer)
        elif answer in {"0", "1", "2", "3"}:
            gold = int(answer)
        else:
            raise RowError(row.path, row.line, "answer", f"expected 0-3 or A-D, got {answer!r}")
        parsed.append((row, values["question"], [values[f"choice{i}"] for i in range(4)], gold))
    return parsed


def _subject_files(folder: Path, split: str, subject: str) -> Path:
    path = folder / split / f"{subject}_{split}.csv"
    if not path.exists():
        raise DataError(f"MMLU file missing: {path}. {HOW_TO_GET}")
    return path


def _header(subject: str) -> str:
    return f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"


def _letter_block(question: str, choices: list[str]) -> str:
    options = "".join(f"\n{letter}. {choice}" for letter, choice in zip(LETTERS, choices))
    return f"{question.strip()}{options}\nAnswer:"


def _cloze_block(question: str) -> str:
    return f"Question: {question.strip()}\nAnswer:"


class MMLUData:
    """Loads the test questions and the dev examples used as few-shot shots."""

    def __init__(self, subjects: list[str], num_fewshot: int, data_dir: str | None):
        unknown = [s for s in subjects if s not in SUBJECT_CATEGORY]
        if unknown:
            raise DataError(f"unknown MMLU subject(s): {', '.join(unknown)}")
        if not 0 <= num_fewshot <= 5:
            raise DataError(f"MMLU has 5 dev examples per subject; num_fewshot={num_fewshot} is out of 0-5")
        self.folder = find_dataset("MMLU", "mmlu", data_dir=data_dir, how_to_get=HOW_TO_GET)
        self.subjects = subjects
        self.num_fewshot = num_fewshot
        self.files: dict[str, str] = {}
        self.shots: dict[str, list[tuple[str, list[str], int]]] = {}

    def samples(self) -> list[Sample]:
        samples = []
        for subject in self.subjects:
            test = _subject_files(self.folder, "test", subject)
            self.files[str(test)] = file_digest(test)
            if self.num_fewshot:
                dev = _subject_files(self.folder, "dev", subject)
                self.files[str(dev)] = file_digest(dev)
                self.shots[subject] = [(q, c, g) for _, q, c, g in _parse_rows(dev)][: self.num_fewshot]
            for index, (_, question, choices, gold) in enumerate(_parse_rows(test)):
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


def _task(name: str, subjects: list[str], cloze: bool, num_fewshot: int = 0, data_dir: str | None = None) -> ChoiceTask:
    data = MMLUData(subjects, num_fewshot, data_dir)
    options: dict[str, Any] = {"num_fewshot": num_fewshot, "subjects": subjects if len(subjects) < 57 else "all",
                               "data_files": data.files}
    return ChoiceTask(
        name=name,
        load=data.samples,
        context=data.cloze_context if cloze else data.letter_context,
        choices=(lambda s: s.data["choices"]) if cloze else (lambda s: list(LETTERS)),
        metrics=("acc", "acc_norm", "acc_bytes") if cloze else ("acc",),
        group_by=("subject", "category"),
        options=options,
    )


def mmlu(num_fewshot: int = 0, data_dir: str | None = None, subjects: list[str] | None = None) -> ChoiceTask:
    return _task("mmlu", subjects or SUBJECTS, cloze=False, num_fewshot=num_fewshot, data_dir=data_dir)


def mmlu_cloze(num_fewshot: int = 0, data_dir: str | None = None, subjects: list[str] | None = None) -> ChoiceTask:
    return _task("mmlu_cloze", subjects or SUBJECTS, cloze=True, num_fewshot=num_fewshot, data_dir=data_dir)


def mmlu_subject(subject: str, num_fewshot: int = 0, data_dir: str | None = None) -> ChoiceTask:
    return _task(f"mmlu_{subject}", [subject], cloze=False, num_fewshot=num_fewshot, data_dir=data_dir)


def subject_factories() -> dict[str, Any]:
    return {f"mmlu_{s}": partial(mmlu_subject, s) for s in SUBJECTS}
