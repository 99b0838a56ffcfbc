"""The tiny causal LM (about 1.5k parameters, vocabulary 16) trained on folded arXiv abstracts, its corpus file and
queries (lmaudit.influence.reference.tiny_setup): small enough that the Gauss-Newton Hessian is built exactly."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def abstracts(data_dir) -> list[str]:
    with open(data_dir / "arxiv" / "arxiv_data_1000_tiagoft.csv", encoding="utf-8", newline="") as handle:
        return [" ".join(row["summaries"].split()) for row in csv.DictReader(handle)]


@pytest.fixture(scope="session")
def setup(tmp_path_factory, data_dir):
    import torch

    from lmaudit.influence.reference import tiny_setup

    torch.set_num_threads(1)
    return tiny_setup(data_dir / "arxiv" / "arxiv_data_1000_tiagoft.csv", tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_dir(setup) -> Path:
    return setup.model_dir


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    from lmaudit.models import load_model

    return load_model(f"hf:{tiny_dir}")


@pytest.fixture(scope="session")
def tiny64(tiny_dir):
    from lmaudit.models import load_model

    return load_model(f"hf:{tiny_dir}", dtype="float64")


@pytest.fixture(scope="session")
def tiny_corpus(setup) -> Path:
    """16 abstracts the model was not trained on, folded to the tiny alphabet, as a JSONL corpus."""
    return setup.corpus


@pytest.fixture(scope="session")
def queries(setup):
    return setup.queries


@pytest.fixture(scope="session")
def queries_file(tmp_path_factory, queries) -> Path:
    import json

    path = tmp_path_factory.mktemp("queries") / "queries.jsonl"
    path.write_text("".join(json.dumps({"id": q.query_id, "prompt": q.prompt, "completion": q.completion}) + "\n"
                            for q in queries), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def sequences(tiny, tiny_corpus):
    from lmaudit.influence import corpus_sequences

    return corpus_sequences(tiny, [tiny_corpus], 16)[:96]
