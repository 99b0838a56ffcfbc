"""MMMLU (OpenAI, 2024): the MMLU test set translated by professional translators into 14 languages.

The release is one CSV per locale, `test/mmlu_<LOCALE>.csv` (e.g. mmlu_DE-DE.csv), with the columns Question, A,
B, C, D, Answer (a letter) and Subject (an MMLU subject such as abstract_algebra); early copies also have an
unnamed index column first. Tasks: `mmmlu_<locale>` (e.g. mmmlu_de_de) for one locale and `mmmlu` for all 14,
grouped by language (a FLORES-200 code, so `lmaudit tokens vs-accuracy` can read the run), subject and category.
Prompts are MMLU's (the English header, the translated question and options, "Answer:"), scored by the
log-probability of " A".." D". Few-shot examples are the first k questions of the same subject in the same file,
which are then not scored (the release has no dev split).

Data: a local folder `<data dir>/mmmlu/` holding the CSVs (directly or under test/), or a Hugging Face dataset id
(`dataset=openai/MMMLU`, its `by_language` configuration, one split per locale), loaded through lmaudit.data.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from lmaudit.core.errors import DataError, RowError, UnknownNameError
from lmaudit.core.hashing import file_digest
from lmaudit.core.types import Sample
from lmaudit.data import find_dataset, load_hub_rows, read_rows
from lmaudit.tasks.base import ChoiceTask
from lmaudit.tasks.mmlu import LETTERS, SUBJECT_CATEGORY, _header, _letter_block

# Locale -> FLORES-200 code of its language.
LOCALES = {"AR_XY": "arb_Arab", "BN_BD": "ben_Beng", "DE_DE": "deu_Latn", "ES_LA": "spa_Latn", "FR_FR": "fra_Latn",
           "HI_IN": "hin_Deva", "ID_ID": "ind_Latn", "IT_IT": "ita_Latn", "JA_JP": "jpn_Jpan", "KO_KR": "kor_Hang",
           "PT_BR": "por_Latn", "SW_KE": "swh_Latn", "YO_NG": "yor_Latn", "ZH_CN": "zho_Hans"}
COLUMNS = ("Question", "A", "B", "C", "D", "Answer", "Subject")
HOW_TO_GET = ("Download the CSVs of huggingface.co/datasets/openai/MMMLU (folder test/, files mmlu_<LOCALE>.csv) "
              "into <data dir>/mmmlu/, or pass dataset=openai/MMMLU to load it through the datasets library.")


def _file_name(locale: str) -> str:
    return f"mmlu_{locale.replace('_', '-')}.csv"


def _parse(rows: list[tuple[dict[str, Any], str, int]]) -> list[tuple[str, list[str], int, str]]:
    """(question, choices, gold, subject) per row; one clear error naming the file, line and field otherwise."""
    parsed = []
    for values, where, line in rows:
        for name in COLUMNS:
            if not isinstance(values.get(name), str):
                raise RowError(where, line, name, f"missing column of the MMMLU schema ({', '.join(COLUMNS)})")
        answer = values["Answer"].strip()
        if answer not in LETTERS:
            raise RowError(where, line, "Answer", f"expected A-D, got {answer!r}")
        subject = values["Subject"].strip()
        if subject not in SUBJECT_CATEGORY:
            raise RowError(where, line, "Subject", f"not an MMLU subject: {subject!r}")
        parsed.append((values["Question"], [values[letter] for letter in LETTERS], LETTERS.index(answer), subject))
    return parsed


class MMMLUData:
    def __init__(self, locales: list[str], num_fewshot: int, data_dir: str | None, dataset: str | None,
                 subjects: list[str] | None):
        if not 0 <= num_fewshot <= 5:
            raise DataError(f"MMMLU: num_fewshot={num_fewshot} is out of 0-5")
        unknown = [s for s in subjects or [] if s not in SUBJECT_CATEGORY]
        if unknown:
            raise UnknownNameError("MMLU subject", unknown[0], sorted(SUBJECT_CATEGORY))
        self.locales, self.num_fewshot, self.dataset, self.subjects = locales, num_fewshot, dataset, subjects
        self.data_dir = data_dir
        self.files: dict[str, str] = {}
        self.shots: dict[tuple[str, str], list[tuple[str, list[str], int]]] = {}

    def _rows(self, locale: str) -> list[tuple[dict[str, Any], str, int]]:
        if self.dataset:
            rows = load_hub_rows("MMMLU", self.dataset, "by_language", locale, fallback=HOW_TO_GET)
            self.files[f"hub:{self.dataset}/{locale}"] = str(len(rows))
            return [(row, f"{self.dataset} ({locale})", number) for number, row in enumerate(rows, start=1)]
        folder = find_dataset("MMMLU", "mmmlu", data_dir=self.data_dir, how_to_get=HOW_TO_GET)
        candidates = [folder / "test" / _file_name(locale), folder / _file_name(locale)]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise DataError(f"MMMLU file missing: {candidates[0]} (or {candidates[1]}). {HOW_TO_GET}")
        self.files[str(path)] = file_digest(path)
        return [(row.values, row.path, row.line) for row in read_rows(path)]

    def samples(self) -> list[Sample]:
        samples = []
        for locale in self.locales:
            by_subject: dict[str, list[tuple[str, list[str], int]]] = {}
            for question, choices, gold, subject in _parse(self._rows(locale)):
                if self.subjects is None or subject in self.subjects:
                    by_subject.setdefault(subject, []).append((question, choices, gold))
            for subject, questions in sorted(by_subject.items()):
                self.shots[(locale, subject)] = questions[: self.num_fewshot]
                for index, (question, choices, gold) in enumerate(questions[self.num_fewshot:], start=self.num_fewshot):
                    samples.append(Sample(
                        id=f"{locale}/{subject}/{index}",
                        data={"question": question, "choices": choices, "subject": subject, "locale": locale},
                        target=gold, metadata={"language": LOCALES[locale], "locale": locale, "subject": subject,
                                               "category": SUBJECT_CATEGORY[subject]}))
        return samples

    def context(self, sample: Sample) -> str:
        subject, locale = sample.data["subject"], sample.data["locale"]
        shots = "".join(f"{_letter_block(q, c)} {LETTERS[g]}\n\n" for q, c, g in self.shots.get((locale, subject), []))
        return _header(subject) + shots + _letter_block(sample.data["question"], sample.data["choices"])


def _task(name: str, locales: list[str], num_fewshot: int = 0, data_dir: str | None = None,
          dataset: str | None = None, subjects: list[str] | None = None) -> ChoiceTask:
    data = MMMLUData(locales, num_fewshot, data_dir, dataset, subjects)
    return ChoiceTask(
        name=name, load=data.samples, context=data.context, choices=lambda s: list(LETTERS), metrics=("acc",),
        group_by=("language", "subject", "category") if len(locales) > 1 else ("subject", "category"),
        options={"num_fewshot": num_fewshot, "locales": locales, "dataset": dataset, "subjects": subjects or "all",
                 "data_files": data.files})


def mmmlu(num_fewshot: int = 0, data_dir: str | None = None, dataset: str | None = None,
          subjects: list[str] | None = None) -> ChoiceTask:
    return _task("mmmlu", list(LOCALES), num_fewshot, data_dir, dataset, subjects)


def locale_factories() -> dict[str, Any]:
    return {f"mmmlu_{locale.lower()}": partial(_task, f"mmmlu_{locale.lower()}", [locale]) for locale in LOCALES}

