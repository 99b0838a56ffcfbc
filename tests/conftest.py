"""Shared fixtures: the real data folder and the bundled model, loaded once.

Without the data folder, the tests that read it are skipped with the reason on a developer's machine, and fail
in CI (CI=true), where the folder is always laid out: a green CI run never hides a missing data set.
"""

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
        message = f"the test data folder is missing: set LMAUDIT_DATA_DIR to shared/data (now {value!r})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Path(value)


@pytest.fixture(scope="session")
def smollm2():
    from lmaudit.models import load_model

    return load_model("smollm2")
