"""Shared by the safety tests: the real model on one thread, and a wrapper that counts its calls."""

from __future__ import annotations

import pytest

from lmaudit.testing.counting import CountingModel  # noqa: F401  (re-exported for the tests)



@pytest.fixture
def model(smollm2):
    """The bundled model with torch on one thread: these tests make few tiny calls, and on a shared 2-core
    runner OpenMP threads spinning against other processes make them many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield smollm2
    torch.set_num_threads(threads)
