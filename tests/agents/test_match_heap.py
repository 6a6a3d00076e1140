"""agents.match.heap: freed buffers stay in the heap (no page faults on reuse); settings are checked."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agents.match import heap

_PROBE = """
import resource, sys
import numpy as np
from agents.match.heap import keep_freed_memory

def faults_of_reuse() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):  # a step's worth of buffers (6 x 8 MB), touched, then all freed
        buffers = [np.empty(2_000_000, np.float32) for _ in range(6)]
        for buffer in buffers:
            buffer.fill(1.0)
        del buffers, buffer
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

default = faults_of_reuse()
applied = keep_freed_memory(64)
faults_of_reuse()  # the heap grows to hold the buffers once
kept = faults_of_reuse() if applied else -1
print(default, kept, applied is not None)
"""


def test_freed_buffers_are_reused_without_page_faults() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, cwd=".")
    default, kept, applied = out.stdout.split()
    if applied != "True":
        pytest.skip("this C library has no mallopt: the allocator's defaults stay")
    # glibc's defaults hand much of the 48 MB back to the kernel after each round (its dynamic trim
    # threshold is twice the largest freed buffer), so every round faults pages in again
    assert int(default) > 10 * 1_000
    assert int(kept) < int(default) / 20  # kept in the heap: reused without faults


def test_zero_leaves_the_allocator_alone_and_bad_values_name_the_setting() -> None:
    before = heap._applied
    assert heap.keep_freed_memory(0) == before
    for bad in (-1, 1.5, True, "256", 4096):  # 4096 MiB: more bytes than mallopt's C int holds
        with pytest.raises(ValueError, match="match.heap_keep_mb"):
            heap.keep_freed_memory(bad)  # type: ignore[arg-type]
