"""Parallel corpora: the same sentences in many languages, line-aligned.

A language's text is a list of *items* (lines) that is aligned across languages: item k is the same sentence
everywhere. The text that Petrov et al. count is every item joined with single spaces (`joined`): for FLORES-200
that is each file read whole and split at "\\n" (so the empty string after a file's last newline is an item too),
dev then devtest. Our counts equal theirs because the joined string is byte for byte the one they encoded.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from lmaudit.core.errors import DataError, RowError, UnknownNameError
from lmaudit.core.hashing import file_digest
from lmaudit.data.tables import find_dataset, read_rows
from lmaudit.tokens.languages import to_flores

FLORES_HOW = ("FLORES-200 is published by Meta AI (dev and devtest splits, one file per language, e.g. "
              "dev/eng_Latn.dev); put its dev/ and devtest/ folders under <data dir>/flores200/.")
NTREX_HOW = ("NTREX-128 is github.com/MicrosoftTranslator/NTREX; put its NTREX-128/ folder under "
             "<data dir>/ntrex128/.")


@dataclass(frozen=True)
class LanguageText:
    code: str
    items: tuple[str, ...]

    @property
    def joined(self) -> str:
        return " ".join(self.items)


@dataclass
class ParallelCorpus:
    name: str
    texts: dict[str, LanguageText]
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256, for the run manifest

    @property
    def languages(self) -> list[str]:
        return list(self.texts)

    @property
    def size(self) -> int:
        return len(next(iter(self.texts.values())).items) if self.texts else 0

    def resolve(self, code: str) -> str:
        """A language of this corpus named by a FLORES code, an ISO code or a locale; one clear error if absent."""
        found = to_flores(code, set(self.texts))
        if found not in self.texts:
            raise UnknownNameError(f"language of corpus {self.name}", code, self.languages)
        return found

    def select(self, codes: list[str] | None, reference: str | None = None) -> "ParallelCorpus":
        """The corpus restricted to `codes` (all when None), always keeping the reference language."""
        chosen = [self.resolve(c) for c in codes] if codes else list(self.texts)
        if reference is not None:
            ref = self.resolve(reference)
            chosen = [ref] + [c for c in chosen if c != ref]
        return ParallelCorpus(self.name, {c: self.texts[c] for c in dict.fromkeys(chosen)}, self.files)

    def head(self, n: int | None) -> "ParallelCorpus":
        """The first n items of every language (all when None)."""
        if n is None or n >= self.size:
            return self
        return ParallelCorpus(f"{self.name}[:{n}]", {c: LanguageText(c, t.items[:n]) for c, t in self.texts.items()},
                              self.files)


def _read_items(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _check_aligned(name: str, part: str, lines: dict[str, tuple[Path, int]]) -> None:
    """Every file of a part must have as many lines as the others; name the odd file and both counts."""
    counts: dict[int, list[str]] = defaultdict(list)
    for code, (_, count) in lines.items():
        counts[count].append(code)
    if len(counts) <= 1:
        return
    expected = max(counts, key=lambda n: len(counts[n]))
    odd = next(code for code, (_, count) in sorted(lines.items()) if count != expected)
    path, count = lines[odd]
    raise DataError(f"corpus {name}: {path} has {count} lines, but the other files of {part or 'the corpus'} "
                    f"have {expected} (e.g. {lines[counts[expected][0]][0].name}): the files are not line-aligned")


def from_folders(name: str, parts: list[tuple[str, dict[str, Path]]]) -> ParallelCorpus:
    """A corpus from parts (e.g. dev, devtest), each a {language: file}; items are the parts' lines in order."""
    items: dict[str, list[str]] = defaultdict(list)
    files: dict[str, str] = {}
    languages = None
    for part, by_language in parts:
        if languages is not None and set(by_language) != languages:
            missing = sorted(languages ^ set(by_language))
            raise DataError(f"corpus {name}: part {part} lacks or adds languages: {', '.join(missing[:10])}")
        languages = set(by_language)
        read = {code: _read_items(path) for code, path in by_language.items()}
        _check_aligned(name, part, {code: (by_language[code], len(lines)) for code, lines in read.items()})
        for code, lines in read.items():
            items[code] += lines
            files[str(by_language[code])] = file_digest(by_language[code])
    if not items:
        raise DataError(f"corpus {name}: no language files found")
    return ParallelCorpus(name, {code: LanguageText(code, tuple(items[code])) for code in sorted(items)}, files)


def folder_corpus(folder: Path, name: str | None = None) -> ParallelCorpus:
    """Any folder of line-aligned files, one per language (`<language>.<anything>`); subfolders are parts."""
    if not folder.is_dir():
        raise DataError(f"corpus folder {folder} does not exist")
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    parts = []
    for part in subfolders or [folder]:
        by_language: dict[str, Path] = {}
        for path in sorted(p for p in part.iterdir() if p.is_file() and not p.name.startswith(".")):
            code = to_flores(path.name.split(".")[0])
            if code in by_language:
                raise DataError(f"corpus {folder}: {path.name} and {by_language[code].name} are both {code}")
            by_language[code] = path
        parts.append((part.name if subfolders else "", by_language))
    return from_folders(name or folder.name, parts)


def flores200(data_dir: str | Path | None = None) -> ParallelCorpus:
    folder = find_dataset("FLORES-200", "flores200", data_dir=data_dir, how_to_get=FLORES_HOW)
    parts = []
    for split in ("dev", "devtest"):
        files = sorted((folder / split).glob(f"*.{split}"))
        if not files:
            raise DataError(f"FLORES-200: no *.{split} files in {folder / split}. {FLORES_HOW}")
        parts.append((split, {path.name[: -len(split) - 1]: path for path in files}))
    return from_folders("flores200", parts)


def ntrex128(data_dir: str | Path | None = None) -> ParallelCorpus:
    folder = find_dataset("NTREX-128", "ntrex128", data_dir=data_dir, how_to_get=NTREX_HOW) / "NTREX-128"
    by_language: dict[str, Path] = {"eng_Latn": folder / "newstest2019-src.eng.txt"}
    for path in sorted(folder.glob("newstest2019-ref.*.txt")):
        ntrex = path.name[len("newstest2019-ref."): -len(".txt")]
        code = to_flores(ntrex)
        by_language[ntrex if code in by_language else code] = path
    if not by_language["eng_Latn"].exists():
        raise DataError(f"NTREX-128: {by_language['eng_Latn']} is missing. {NTREX_HOW}")
    return from_folders("ntrex128", [("", by_language)])


def table_corpus(path: Path, *, text_field: str = "text", language_field: str = "language") -> ParallelCorpus:
    """A JSONL/CSV/Parquet file with a language field: each language's rows, in file order, are its items."""
    items: dict[str, list[str]] = defaultdict(list)
    first_line: dict[str, int] = {}
    for row in read_rows(path):
        for name in (language_field, text_field):
            if not isinstance(row.values.get(name), str):
                raise RowError(row.path, row.line, name, "missing or not a string")
        code = to_flores(row.values[language_field])
        first_line.setdefault(code, row.line)
        items[code].append(row.values[text_field])
    if not items:
        raise DataError(f"{path}: no rows")
    sizes = {code: len(lines) for code, lines in items.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{code} {size}" for code, size in sorted(sizes.items(), key=lambda kv: kv[1])[:12])
        raise DataError(f"corpus {path}: the languages have different numbers of rows ({listed}): they are not "
                        "aligned")
    return ParallelCorpus(path.stem, {code: LanguageText(code, tuple(items[code])) for code in sorted(items)},
                          {str(path): file_digest(path)})


CORPORA = {"flores200": flores200, "ntrex128": ntrex128}


def load_corpus(spec: str, *, data_dir: str | Path | None = None, text_field: str = "text",
                language_field: str = "language") -> ParallelCorpus:
    """`flores200`, `ntrex128`, a folder of line-aligned files, or a JSONL/CSV/Parquet file with a language field."""
    if spec in CORPORA:
        return CORPORA[spec](data_dir)
    path = Path(spec).expanduser()
    if path.is_dir():
        return folder_corpus(path)
    if path.is_file():
        return table_corpus(path, text_field=text_field, language_field=language_field)
    raise UnknownNameError("corpus (or no such file or folder)", spec, list(CORPORA))
