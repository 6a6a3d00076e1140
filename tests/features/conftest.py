"""Features tests run torch on one thread (restored afterwards): on a shared, loaded 2-core machine a
second OpenMP thread turns each small op into a ~15 ms wait for the scheduler."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
