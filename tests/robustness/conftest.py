"""One torch thread for the real-model tests: on a shared 2-core machine two threads contend and run ~10x slower."""

import pytest


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
