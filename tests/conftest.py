"""Shared fixtures: the real data folder (required, never skipped) and the bundled model, loaded once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if not os.environ.get("LMAUDIT_DATA_DIR") and (REPO.parent / "shared" / "data").is_dir():
    os.environ["LMAUDIT_DATA_DIR"] = str(REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    value = os.environ.get("LMAUDIT_DATA_DIR")
    if not value or not (Path(value) / "mmlu").is_dir():
        pytest.fail(f"the test data folder is missing: set LMAUDIT_DATA_DIR to shared/data (now {value!r})")
    return Path(value)


@pytest.fixture(scope="session")
def smollm2():
    from lmaudit.models import load_model

    return load_model("smollm2")
