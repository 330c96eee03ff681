"""An autouse fixture for test folders of tiny models: one torch thread per test. Tiny models run faster on
one thread, and on a shared 2-core machine two threads per test fight each other (~10× slower). A folder
opts in by importing it into its conftest.py."""

import pytest


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
