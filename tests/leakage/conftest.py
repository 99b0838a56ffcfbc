"""A tiny causal LM trained from scratch in seconds (scaling's trainer, a PRESETS["tiny"]-sized shape) on real
arXiv abstracts, and one whole leakage run on it, shared by the tests of this folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from leakage_helpers import leakage_argv

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def arxiv(data_dir) -> Path:
    return data_dir / "arxiv" / "arxiv_data_3397_clopezvice.csv"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, data_dir) -> Path:
    """A 2-layer Llama (d_model 16) with a 512-token BPE, trained for 100 steps: a Hugging Face folder."""
    from lmaudit.scaling import ModelShape, RunSpec, load_corpus, train_run
    from lmaudit.scaling.ladder import prepare_data

    out = tmp_path_factory.mktemp("tiny-base")
    corpus = load_corpus(data_dir / "arxiv" / "arxiv_data_1000_tiagoft.csv", heldout_fraction=0.1,
                         text_field="summaries")
    data = prepare_data(corpus, 512, out / "data")
    spec = RunSpec("tiny-base", ModelShape(16, 2, 4, 48), tokens=100 * 8 * 64, lr=0.02, batch_size=8, seq_len=64)
    assert train_run(spec, data, out / "model", heldout_tokens=2048, progress=False, threads=1) is not None
    return out / "model"


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from lmaudit.models import load_model

    return load_model(f"hf:{tiny_model_dir}")


@pytest.fixture(scope="session")
def answers_run(tmp_path_factory, tiny_model_dir):
    """`lmaudit leakage run --setting answers` on the tiny model, run for real through the CLI."""
    from lmaudit.cli.main import main

    out = tmp_path_factory.mktemp("leak-answers") / "run"
    assert main(leakage_argv(tiny_model_dir, out)) == 0
    return out
