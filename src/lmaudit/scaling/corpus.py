"""Training corpora: the Python standard library (present on every machine) or a user's txt/jsonl files.

Documents are split into train and held-out by a hash of their id, so the split is deterministic and a
document never moves when others are added or removed.
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from lmaudit.core.errors import DataError
from lmaudit.core.hashing import text_digest
from lmaudit.data import read_rows, require_field

# Folders of the stdlib that are not library source: installed packages and the (huge, repetitive) test suites.
_STDLIB_SKIP = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
_TEXT_SUFFIXES = {".txt", ".md", ".rst", ".py"}


@dataclass(frozen=True)
class Document:
    id: str
    text: str


@dataclass(frozen=True)
class Corpus:
    name: str
    train: tuple[Document, ...]
    heldout: tuple[Document, ...]

    def fingerprint(self) -> str:
        """Content hash of both splits: a cached tokenizer or token array is reused only for the same corpus."""
        digest = hashlib.sha256()
        for split, docs in (("train", self.train), ("heldout", self.heldout)):
            for doc in docs:
                digest.update(f"{split}\0{doc.id}\0{text_digest(doc.text)}\n".encode())
        return digest.hexdigest()[:16]


def stdlib_files(root: Path | None = None) -> list[Path]:
    """The standard library's .py files (tests and installed packages excluded), sorted by relative path."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise DataError(f"standard library folder not found: {root}")
    files = [p for p in root.rglob("*.py") if not _STDLIB_SKIP.intersection(p.relative_to(root).parts[:-1])]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def is_heldout(doc_id: str, heldout_fraction: float) -> bool:
    bucket = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big") / 2**64
    return bucket < heldout_fraction


def split_documents(name: str, docs: list[Document], heldout_fraction: float) -> Corpus:
    if not 0 < heldout_fraction < 1:
        raise DataError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    train = tuple(d for d in docs if d.text.strip() and not is_heldout(d.id, heldout_fraction))
    heldout = tuple(d for d in docs if d.text.strip() and is_heldout(d.id, heldout_fraction))
    if not train or not heldout:
        raise DataError(f"corpus '{name}' has {len(train)} train and {len(heldout)} held-out documents; "
                        f"it needs at least one of each (add documents or change heldout_fraction)")
    return Corpus(name, train, heldout)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return path.read_text(encoding="latin-1")  # a few stdlib files declare a legacy encoding


def stdlib_corpus(heldout_fraction: float = 0.05, root: Path | None = None) -> Corpus:
    base = Path(root or sysconfig.get_paths()["stdlib"])
    docs = [Document(p.relative_to(base).as_posix(), _read_text(p)) for p in stdlib_files(base)]
    return split_documents(f"stdlib:{base}", docs, heldout_fraction)


def load_corpus(path: str | Path | None = None, *, heldout_fraction: float = 0.05,
                text_field: str = "text") -> Corpus:
    """None: the stdlib. A folder: each .txt/.md/.rst/.py file is a document. A .txt file: documents are
    separated by blank lines. A .jsonl/.json/.csv table: each row's `text_field` is a document."""
    if path is None:
        return stdlib_corpus(heldout_fraction)
    path = Path(path)
    if not path.exists():
        raise DataError(f"corpus not found: {path}")
    if path.is_dir():
        files = sorted((p for p in path.rglob("*") if p.is_file() and p.suffix in _TEXT_SUFFIXES),
                       key=lambda p: p.relative_to(path).as_posix())
        if not files:
            raise DataError(f"corpus folder {path} holds no {'/'.join(sorted(_TEXT_SUFFIXES))} files")
        docs = [Document(p.relative_to(path).as_posix(), _read_text(p)) for p in files]
    elif path.suffix == ".txt":
        blocks = [b for b in _read_text(path).split("\n\n") if b.strip()]
        docs = [Document(f"{path.name}#{i}", block) for i, block in enumerate(blocks)]
    else:
        docs = [Document(f"{path.name}:{row.line}", require_field(row, text_field)) for row in read_rows(path)]
    return split_documents(str(path), docs, heldout_fraction)
