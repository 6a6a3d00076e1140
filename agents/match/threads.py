"""Row blocks of a batch on a few Python threads (numba kernels and torch ops release the GIL).

Input: a function of one block, the blocks, a thread count. Output: the results in block order,
whatever the thread count and whichever thread computed a block (each block is computed by the same
code on the same rows, so one thread and several give identical values). Fresh threads per call: a
pool would not survive a fork (SB3's subprocess vector envs fork), and starting one costs ~0.1 ms
against a step of tens of ms.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

Block = TypeVar("Block")
Result = TypeVar("Result")


def default_threads() -> int:
    """min(2, the cores this process may run on): one core's worth of torch work per thread."""
    return max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def check_threads(threads: int) -> int:
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"worker threads must be an int >= 1, got {threads!r}")
    return threads


def map_blocks(fn: Callable[[Block], Result], blocks: Sequence[Block], threads: int) -> list[Result]:
    """[fn(b) for b in blocks] on min(threads, len(blocks)) threads (the caller is one).

    Each thread takes the next block not yet taken (a shared counter), so a thread slowed down by
    other processes on the machine takes fewer blocks; the results are in block order regardless.
    """
    n_threads = min(check_threads(threads), len(blocks))
    if n_threads <= 1:
        return [fn(b) for b in blocks]
    results: list[Result | None] = [None] * len(blocks)
    errors: list[BaseException] = []
    taken = itertools.count()  # next(count) is atomic under the GIL

    def work() -> None:
        try:
            while not errors and (i := next(taken)) < len(blocks):
                results[i] = fn(blocks[i])
        except BaseException as exc:  # re-raised in the caller below
            errors.append(exc)

    workers = [threading.Thread(target=work, daemon=True) for _ in range(1, n_threads)]
    for worker in workers:
        worker.start()
    work()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]
