"""`lmaudit serve` on the bundled model, on loopback, one server per test module (see serve_helpers.py).

Every request body the server receives is recorded, so a test can tell what a client actually sent.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from serve_helpers import Served, start_server


@pytest.fixture(scope="session")
def one_thread() -> Iterator[None]:
    """Server and clients share 2 busy cores: one torch thread avoids spin-wait stalls."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def server(smollm2, one_thread) -> Iterator[Served]:
    background, served = start_server(smollm2)
    try:
        yield served
    finally:
        background.stop()
