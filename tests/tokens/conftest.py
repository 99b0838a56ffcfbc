"""Shared fixtures: FLORES-200 and the tokenizer files from the shared data folder, loaded once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tokenizer_dir(data_dir: Path) -> Path:
    return data_dir / "tokenizers"


@pytest.fixture(scope="session")
def flores(data_dir: Path):
    from lmaudit.tokens import load_corpus

    return load_corpus("flores200", data_dir=data_dir)


@pytest.fixture(scope="session")
def petrov_sample(data_dir: Path) -> dict[tuple[str, str], int]:
    """Petrov et al.'s published counts for 12 languages and 4 tokenizers (the shared data's sample file)."""
    import csv

    with open(data_dir / "flores200" / "petrov_counts_sample.csv", encoding="utf-8") as handle:
        return {(row["language"], row["tokenizer"]): int(row["tokens"]) for row in csv.DictReader(handle)}
