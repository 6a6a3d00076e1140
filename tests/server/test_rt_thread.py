"""Real-time scheduling for the compiled callbacks' threads (`server.rt_thread`): a thread is put under
SCHED_FIFO where the system allows it, a real-time thread is left as it is, a refusal is one line, and
the compiled callbacks record the thread they run on."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from server import rt_thread
from server.callbacks import NO_STATUS, InputCallback
from server.ring_buffer import RingBuffer
from server.stats import StreamCounters

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_FIFO"), reason="POSIX real-time scheduling")


@pytest.fixture
def parked() -> Iterator[threading.Thread]:
    """A thread that waits (its pthread id: `ident`)."""
    release = threading.Event()
    thread = threading.Thread(target=release.wait, daemon=True)
    thread.start()
    yield thread
    release.set()
    thread.join(5.0)


def test_a_thread_runs_under_sched_fifo_or_the_refusal_says_why(parked: threading.Thread) -> None:
    assert parked.ident is not None and not rt_thread.is_realtime(parked.ident)
    why = rt_thread.promote(parked.ident, 5)
    if why:  # not allowed here (no privilege): one line that says so, and nothing changed
        assert "SCHED_FIFO 5 refused" in why and "\n" not in why
        assert not rt_thread.is_realtime(parked.ident)
        return
    assert rt_thread.is_realtime(parked.ident)
    assert os.sched_getscheduler(parked.native_id) == os.SCHED_FIFO  # type: ignore[arg-type]
    assert os.sched_getparam(parked.native_id).sched_priority == 5  # type: ignore[arg-type]
    assert rt_thread.promote(parked.ident, 9) == ""  # real-time already: left as it is
    assert os.sched_getparam(parked.native_id).sched_priority == 5  # type: ignore[arg-type]


def test_the_compiled_input_callback_records_its_thread() -> None:
    counters = StreamCounters()
    cb = InputCallback(RingBuffer(4096), counters)
    assert counters.thread == 0
    seen: list[int | None] = []

    def call() -> None:
        cb(np.zeros((256, 1), dtype=np.float32), 256, None, NO_STATUS)
        seen.append(threading.get_ident())

    worker = threading.Thread(target=call)
    worker.start()
    worker.join(30.0)
    assert seen and counters.thread == seen[0] != threading.get_ident()  # Python's ident is the pthread id
