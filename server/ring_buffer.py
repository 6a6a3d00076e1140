"""A single-producer single-consumer ring buffer of mono float32 frames, and a wake-up pipe.

Input: blocks of frames written by an audio callback (`RingBuffer.write`, the producer).
Output: fixed-size blocks read by the worker or the recorder thread (`read_into`, the consumer).

Real-time rules for the producer side (`write`): the storage is allocated once; `write` copies
into it with numpy slice assignment (no new arrays), takes no lock (the read and write positions
are each written by one thread only, and a Python attribute store is atomic under the GIL) and
makes no system call. When the consumer falls behind and the buffer is full, the incoming block
is dropped and counted (`overruns`) rather than overwriting frames the consumer may read.

`WakePipe` wakes a sleeping thread: the input callback after each block (so the worker starts on a
block as soon as it is written, instead of polling for it), OSC commands and stop requests. `wake`
is one `write` of a preallocated byte to a non-blocking pipe: it allocates nothing, takes no lock
and cannot block, so it is allowed in the audio callback; it is made with the GIL held (libc
`write` through ctypes.PyDLL, see `_gil_holding_write`), so the callback never has to win the GIL
back from the worker halfway through. A full pipe (the consumer has 64 KiB of wake-ups pending) is
counted in `full`, never raised.
"""

from __future__ import annotations

import ctypes
import os
import select
from collections.abc import Callable

import numpy as np

_WAKE_BYTE = b"\x01"


def _gil_holding_write() -> Callable[[int, bytes, int], int] | None:
    """libc `write` called through ctypes.PyDLL, which keeps the GIL during the call. `os.write` releases
    it, and then the audio callback must win it back from the worker to finish: under CPU load that wait
    reached milliseconds. A write of one byte to a non-blocking pipe cannot block, so holding the GIL
    over it costs nothing. None where there is no C library to call (then `os.write` is used)."""
    try:
        write = ctypes.PyDLL(None, use_errno=True).write
    except (OSError, AttributeError):
        return None
    write.restype = ctypes.c_ssize_t  # arguments: a Python int (C int), bytes (char *), a Python int
    return write  # type: ignore[no-any-return]


_WRITE = _gil_holding_write()


class WakePipe:
    """Wakes a sleeping consumer from any thread without a Python lock (one byte into a pipe)."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._drain = bytearray(4096)
        self.full = 0  # wake-ups not written because the pipe was full (the consumer has plenty pending)

    def wake(self) -> None:
        if self._w < 0:  # closed (teardown): the number may belong to another file by now
            return
        if _WRITE is not None:
            if _WRITE(self._w, _WAKE_BYTE, 1) < 0:  # EAGAIN: the pipe is full, the consumer will wake anyway
                self.full += 1
            return
        try:
            os.write(self._w, _WAKE_BYTE)
        except BlockingIOError:
            self.full += 1

    def wait(self, timeout_s: float) -> bool:
        """Sleep until woken (or `timeout_s` passes); drains pending wake-ups. True if woken."""
        if self._r < 0:
            return False
        ready, _, _ = select.select([self._r], [], [], max(0.0, timeout_s))
        if not ready:
            return False
        try:
            os.readv(self._r, [self._drain])  # into a preallocated buffer
        except BlockingIOError:  # another reader drained it first
            return True
        return True

    def close(self) -> None:
        for fd in (self._r, self._w):
            if fd >= 0:
                os.close(fd)
        self._r = self._w = -1

    def __del__(self) -> None:
        if getattr(self, "_r", -1) >= 0:
            self.close()


class RingBuffer:
    """Preallocated mono float32 frames; positions are monotonically increasing frame counts."""

    def __init__(self, capacity_frames: int) -> None:
        if capacity_frames <= 0:
            raise ValueError(f"ring buffer capacity must be > 0 frames, got {capacity_frames}")
        self.capacity_frames = int(capacity_frames)
        self._data = np.zeros(self.capacity_frames, dtype=np.float32)
        self._write_pos = 0  # written by the producer only
        self._read_pos = 0  # written by the consumer only
        self.overruns = 0  # blocks dropped because the consumer fell behind (producer-owned)

    # --- producer (audio callback) ---------------------------------------------------------------
    def write(self, frames: np.ndarray) -> bool:
        """Copy a 1-D block in (a strided view of a device buffer is fine). False if dropped (full)."""
        n = frames.shape[0]
        start = self._write_pos
        if start + n - self._read_pos > self.capacity_frames:
            self.overruns += 1
            return False
        i = start % self.capacity_frames
        first = min(n, self.capacity_frames - i)
        self._data[i : i + first] = frames[:first]
        if first < n:
            self._data[: n - first] = frames[first:]
        self._write_pos = start + n
        return True

    # --- consumer (worker thread) ----------------------------------------------------------------
    @property
    def available_frames(self) -> int:
        return self._write_pos - self._read_pos

    @property
    def frames_written(self) -> int:
        return self._write_pos

    @property
    def frames_read(self) -> int:
        return self._read_pos

    def read_into(self, out: np.ndarray) -> bool:
        """Fill `out` (1-D float32) with the next frames; False (and `out` untouched) if not enough."""
        n = out.shape[0]
        start = self._read_pos
        if self._write_pos - start < n:
            return False
        i = start % self.capacity_frames
        first = min(n, self.capacity_frames - i)
        out[:first] = self._data[i : i + first]
        if first < n:
            out[first:] = self._data[: n - first]
        self._read_pos = start + n
        return True

    def clear(self) -> None:
        """Consumer side: skip everything written so far (e.g. after a device restart)."""
        self._read_pos = self._write_pos
