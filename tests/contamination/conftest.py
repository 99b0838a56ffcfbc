"""A training corpus built from the real files in the data folder, with and without MMLU items injected.

The corpus has several files in every supported format: arXiv titles and abstracts (JSONL, one gzipped),
NTREX news sentences in English and five other scripts (text, one gzipped), MBPP task texts (Parquet) and
TruthfulQA questions (JSONL). Injected items are perturbed the way leaked text is: other spacing and line
breaks, other casing, and punctuation added, dropped and swapped.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from lmaudit.contamination import EvalItem, items_from_tasks
from lmaudit.contamination.normalize import normalize
from lmaudit.tasks import get_task

NTREX_LANGUAGES = ("src.eng", "ref.deu", "ref.rus", "ref.zho-CN", "ref.ell", "ref.hin")
PUNCTUATION = [",", ".", ";", ":", "!", "?", "-", "—", "“", "”", "'", "(", ")", "…", "«", "»"]


@dataclass
class Injection:
    item: EvalItem
    source: str  # corpus file
    line: int  # line (or Parquet row) of the document it went into
    text: str  # the perturbed text as injected


def perturb(text: str, rng: random.Random) -> str:
    """Same letters and digits in the same order; different spacing, casing and punctuation."""
    text = "".join(c for c in text if c.isalnum() or c.isspace() or rng.random() < 0.5)  # drop half the symbols
    text = "".join(rng.choice(PUNCTUATION) if not (c.isalnum() or c.isspace()) and rng.random() < 0.5 else c
                   for c in text)  # swap half the rest
    words = text.split()
    casing = rng.choice(["upper", "lower", "title", "swap", "random"])
    out = []
    for word in words:
        if casing == "random":
            word = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in word)
        else:
            word = {"upper": word.upper(), "lower": word.lower(), "title": word.title(),
                    "swap": word.swapcase()}[casing]
        if rng.random() < 0.2:
            word += rng.choice(PUNCTUATION)
        out.append(word)
        out.append(rng.choice([" ", "  ", "\n", "\t", " \n\n ", " - "]))
    return "".join(out).strip()


def _documents(data_dir: Path) -> dict[str, list[dict]]:
    """File name -> documents ({"id", "text"}), read from the real data."""
    files: dict[str, list[dict]] = {}
    with open(data_dir / "arxiv" / "arxiv_data_3397_clopezvice.csv", encoding="utf-8") as handle:
        rows = [{"id": r["index"], "text": f"{r['title']}\n\n{r['abstract']}"} for r in csv.DictReader(handle)]
    files["arxiv-2025-a.jsonl.gz"], files["arxiv-2025-b.jsonl"] = rows[:1700], rows[1700:]
    with open(data_dir / "arxiv" / "arxiv_data_1000_tiagoft.csv", encoding="utf-8") as handle:
        files["arxiv-older.jsonl"] = [{"id": f"older-{i}", "text": f"{r['titles']}\n\n{r['summaries']}"}
                                      for i, r in enumerate(csv.DictReader(handle))]
    for position, language in enumerate(NTREX_LANGUAGES):
        path = data_dir / "ntrex128" / "NTREX-128" / f"newstest2019-{language}.txt"
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        files[f"news-{language.split('.')[1]}.txt" + (".gz" if position == 1 else "")] = [{"text": t} for t in lines]
    with open(data_dir / "mbpp" / "mbpp.jsonl", encoding="utf-8") as handle:
        files["mbpp.parquet"] = [{"id": f"mbpp-{json.loads(l)['task_id']}", "text": json.loads(l)["text"]}
                                 for l in handle if l.strip()]
    with open(data_dir / "truthfulqa" / "TruthfulQA.csv", encoding="utf-8") as handle:
        files["truthfulqa.jsonl"] = [{"id": f"tqa-{i}", "text": f"{r['Question']} {r['Best Answer']}"}
                                     for i, r in enumerate(csv.DictReader(handle))]
    return files


def _write(folder: Path, name: str, documents: list[dict]) -> None:
    path = folder / name
    if name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(documents), path)
        return
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as handle:
        for document in documents:
            if ".txt" in name:
                handle.write(document["text"].replace("\n", " ") + "\n")
            else:
                handle.write(json.dumps(document, ensure_ascii=False) + "\n")


def build_corpus(data_dir: Path, folder: Path, inject: list[EvalItem], seed: int) -> list[Injection]:
    """Write the corpus into `folder`, each injected item put into a random document at a word boundary."""
    folder.mkdir(parents=True, exist_ok=True)
    files = _documents(data_dir)
    rng = random.Random(seed)
    injections = []
    names = sorted(files)
    for item in inject:
        name = rng.choice(names)
        index = rng.randrange(len(files[name]))
        document = files[name][index]
        text = perturb(item.text, rng)
        if ".txt" in name:
            text = text.replace("\n", " ")  # a text file holds one document per line
        breaks = [0] + [m.end() for m in re.finditer(r"\s+", document["text"])] + [len(document["text"])]
        at = rng.choice(breaks)
        document["text"] = f"{document['text'][:at]} {text} {document['text'][at:]}"
        injections.append(Injection(item, str(folder / name), index + 1, text))
    for name in names:
        _write(folder, name, files[name])
    return injections


@pytest.fixture(scope="session")
def mmlu_items(data_dir) -> list[EvalItem]:
    return items_from_tasks([get_task("mmlu")])


@pytest.fixture(scope="session")
def injected_sample(mmlu_items) -> list[EvalItem]:
    """A seeded sample of MMLU test items long enough to check (>= 20 letters and digits)."""
    checkable = [item for item in mmlu_items if len(normalize(item.text)) >= 20]
    return random.Random(2024).sample(checkable, 60)


@pytest.fixture(scope="session")
def clean_corpus(data_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clean-corpus")
    build_corpus(data_dir, folder, [], seed=7)
    return folder


@pytest.fixture(scope="session")
def dirty_corpus(data_dir, tmp_path_factory, injected_sample) -> tuple[Path, list[Injection]]:
    folder = tmp_path_factory.mktemp("dirty-corpus")
    return folder, build_corpus(data_dir, folder, injected_sample, seed=7)


@pytest.fixture(scope="session")
def substring_index(mmlu_items):
    from lmaudit.contamination import build_index

    return build_index("substring", mmlu_items)


@pytest.fixture(scope="session")
def ngram_index(mmlu_items):
    from lmaudit.contamination import build_index

    return build_index("ngram", mmlu_items)


@pytest.fixture(scope="session")
def make_corpus(data_dir):
    """build_corpus for a test's own injections: make_corpus(folder, items, seed) -> injections."""
    return lambda folder, items, seed: build_corpus(data_dir, folder, items, seed)


@pytest.fixture
def one_torch_thread():
    """Run torch on one intra-op thread for the test, then restore the setting.

    On the shared 2-core machine the tests run on, two torch threads stall each other behind other jobs
    (a 20x77-token forward: 23-31 s with two threads, 10 s with one), and the model tests would not fit
    their time budget.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
