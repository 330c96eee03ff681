"""Tiny models run faster on one thread, and on a shared machine two threads per test oversubscribe it."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
