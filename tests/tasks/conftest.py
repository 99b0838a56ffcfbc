"""Folders laid out as the Hugging Face hub lays out a dataset (README configs + <config>/<split>-*.parquet),
built from the real local copies, so `datasets.load_dataset` reads them exactly as it reads a hub download."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

MMLU_SUBJECTS = ["anatomy", "astronomy", "virology"]


def write_hub_dataset(folder: Path, configs: dict[str, dict[str, list[dict]]], features=None) -> Path:
    """`configs` maps config -> split -> rows; writes the parquet files and the card's `configs:` block."""
    import datasets

    card = ["---", "configs:"]
    for config, splits in configs.items():
        card += [f"- config_name: {config}", "  data_files:"]
        for split, rows in splits.items():
            (folder / config).mkdir(parents=True, exist_ok=True)
            datasets.Dataset.from_list(rows, features=features).to_parquet(
                str(folder / config / f"{split}-00000-of-00001.parquet"))
            card += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    (folder / "README.md").write_text("\n".join(card + ["---", "", "A test copy in the hub's layout.", ""]))
    return folder


@pytest.fixture
def hub_caches(tmp_path, monkeypatch):
    """lmaudit's snapshots and datasets' own cache under tmp_path (never the user's caches, never the network)."""
    import datasets

    monkeypatch.setenv("LMAUDIT_CACHE_DIR", str(tmp_path / "lmaudit-cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    return tmp_path


def _mmlu_rows(data_dir: Path, split: str, subject: str) -> list[dict]:
    with open(data_dir / "mmlu" / split / f"{subject}_{split}.csv", newline="", encoding="utf-8") as handle:
        return [{"question": r["question"], "subject": subject, "choices": [r[f"choice{i}"] for i in range(4)],
                 "answer": int(r["answer"])} for r in csv.DictReader(handle)]


@pytest.fixture(scope="session")
def mmlu_hub_subjects() -> list[str]:
    return list(MMLU_SUBJECTS)


@pytest.fixture(scope="session")
def mmlu_hub(data_dir, tmp_path_factory) -> Path:
    """cais/mmlu's layout for three subjects: an 'all' configuration and one per subject."""
    import datasets

    features = datasets.Features({"question": datasets.Value("string"), "subject": datasets.Value("string"),
                                  "choices": datasets.Sequence(datasets.Value("string")),
                                  "answer": datasets.ClassLabel(names=["A", "B", "C", "D"])})
    configs = {"all": {split: [row for s in MMLU_SUBJECTS for row in _mmlu_rows(data_dir, split, s)]
                       for split in ("test", "dev")}}
    configs.update({s: {split: _mmlu_rows(data_dir, split, s) for split in ("test", "dev")} for s in MMLU_SUBJECTS})
    return write_hub_dataset(tmp_path_factory.mktemp("cais-mmlu"), configs, features)


@pytest.fixture(scope="session")
def truthfulqa_hub(data_dir, tmp_path_factory) -> Path:
    """truthfulqa/truthful_qa's `generation` configuration: snake_case fields, answers as lists."""
    def answers(text: str) -> list[str]:
        return [part.strip() for part in text.split(";") if part.strip()]

    with open(data_dir / "truthfulqa" / "TruthfulQA.csv", newline="", encoding="utf-8") as handle:
        rows = [{"type": r["Type"], "category": r["Category"], "question": r["Question"],
                 "best_answer": r["Best Answer"], "correct_answers": answers(r["Correct Answers"]),
                 "incorrect_answers": answers(r["Incorrect Answers"]), "source": r["Source"]}
                for r in csv.DictReader(handle)]
    return write_hub_dataset(tmp_path_factory.mktemp("truthful_qa"), {"generation": {"validation": rows}})


@pytest.fixture(scope="session")
def humaneval_hub(data_dir, tmp_path_factory) -> Path:
    with gzip.open(data_dir / "humaneval" / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return write_hub_dataset(tmp_path_factory.mktemp("openai_humaneval"), {"openai_humaneval": {"test": rows}})


@pytest.fixture(scope="session")
def mbpp_hub(data_dir, tmp_path_factory) -> Path:
    """google-research-datasets/mbpp's `full` configuration, its four splits written in the hub's order."""
    from lmaudit.codeeval.benchmarks import mbpp_split

    import datasets

    text, texts = datasets.Value("string"), datasets.Sequence(datasets.Value("string"))
    features = datasets.Features({"task_id": datasets.Value("int32"), "text": text, "code": text,
                                  "test_list": texts, "test_setup_code": text, "challenge_test_list": texts})
    rows = [json.loads(line) for line in (data_dir / "mbpp" / "mbpp.jsonl").read_text().splitlines() if line.strip()]
    splits = {name: [r for r in rows if mbpp_split(r["task_id"]) == name]
              for name in ("train", "test", "validation", "prompt")}
    return write_hub_dataset(tmp_path_factory.mktemp("mbpp"), {"full": splits}, features)
