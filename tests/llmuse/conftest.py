"""Real text for the llmuse tests: arXiv abstracts from before LLMs (cs, the older collection) and from May 2025
(math). The two collections differ so much in their words that a mixture of them is a real-text mixture of known
share: where a test needs a second distribution without running the model, the 2025 abstracts play Q."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")


def _column(path: Path, name: str) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [row[name] for row in csv.DictReader(handle)]


@pytest.fixture(scope="session")
def arxiv(data_dir) -> dict[str, Path]:
    folder = data_dir / "arxiv"
    return {"old": folder / "arxiv_data_1000_tiagoft.csv", "new": folder / "arxiv_data_3397_clopezvice.csv"}


@pytest.fixture(scope="session")
def abstracts(arxiv) -> dict[str, list[str]]:
    return {"old": _column(arxiv["old"], "summaries"), "new": _column(arxiv["new"], "abstract")}


@pytest.fixture(scope="session")
def real_reference(abstracts, tmp_path_factory) -> Path:
    """A reference file: 500 older abstracts as P, 500 2025 abstracts as Q, and held-out parts of both (the
    held-out human ids 0-199 and AI ids 0-99 overlap, which only the reference split's pairing looks at)."""
    path = tmp_path_factory.mktemp("reference") / "reference.jsonl"
    old, new = abstracts["old"], abstracts["new"]
    parts = [("human", "reference", old[:500]), ("ai", "reference", new[:500]), ("human", "heldout", old[500:700]),
             ("ai", "heldout", new[500:600])]
    with open(path, "w", encoding="utf-8") as handle:
        for source, split, texts in parts:
            for i, text in enumerate(texts):
                # ids pair the i-th human and AI reference paragraphs, as a rewrite and its original are paired
                handle.write(json.dumps({"doc_id": f"{split}-{i}", "source": source, "split": split,
                                         "text": text}) + "\n")
    return path


@pytest.fixture(scope="session")
def real_target(abstracts, tmp_path_factory) -> tuple[Path, int]:
    """120 held-out older abstracts (group cs, 2020) and 30 other 2025 ones (group math, 2025): a CSV with
    text, group and date columns; returns the file and the number of 2025 documents."""
    path = tmp_path_factory.mktemp("target") / "target.csv"
    rows = [{"abstract": t, "category": "['cs.CV', 'cs.LG']", "date": "2020-03-02"} for t in abstracts["old"][700:820]]
    rows += [{"abstract": t, "category": "['math.AP']", "date": "2025-05-30"} for t in abstracts["new"][600:630]]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["abstract", "category", "date"])
        writer.writeheader()
        writer.writerows(rows)
    return path, 30
