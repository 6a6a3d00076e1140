"""A single-producer single-consumer ring buffer of mono float32 frames, and a wake-up pipe.

Input: blocks of frames written by an audio callback (`RingBuffer.write`, the producer).
Output: fixed-size blocks read by the worker or the recorder thread (`read_into`, the consumer).

The storage and the positions are numpy arrays shared with the compiled callbacks
(`server.rt_kernel`, which PortAudio calls without Python); `write` and `read_into` run the same compiled
code from Python. Real-time rules for the producer side: the storage is allocated once, the copy makes
no new arrays, takes no lock (each position has one writer) and makes no system call; a fence orders
the frames before the position that publishes them. When the consumer falls behind and the buffer is
full, the incoming block is dropped and counted (`overruns`) rather than overwriting frames the consumer
may read.

`WakePipe` wakes a sleeping thread: the input callback after each block (so the worker starts on a
block as soon as it is written, instead of polling for it), OSC commands and stop requests. `wake`
is one `write` of a preallocated byte to a non-blocking pipe (libc, called from compiled code): it
allocates nothing, takes no lock and cannot block, so it is allowed in the audio callback. A full pipe
(the consumer has 64 KiB of wake-ups pending) is counted in `full`, never raised.
"""

from __future__ import annotations

import os
import select

import numpy as np

from server import rt_kernel as rt


class WakePipe:
    """Wakes a sleeping consumer from any thread without a Python lock (one byte into a pipe)."""

    def __init__(self) -> None:
        self._r, w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(w, False)
        self.fd = np.array([w], dtype=np.int64)  # the write end; -1 once closed (the callbacks read it)
        self.byte = np.ones(1, dtype=np.uint8)
        self.full_count = np.zeros(1, dtype=np.int64)  # wake-ups not written: the pipe was full
        self._drain = bytearray(4096)

    @property
    def full(self) -> int:
        return int(self.full_count[0])

    def wake(self) -> None:
        rt.wake(self.fd, self.full_count, self.byte)  # EAGAIN (full): counted, the consumer wakes anyway

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
        w, self.fd[0] = int(self.fd[0]), -1  # first: a callback never writes to a closed (reused) number
        for fd in (self._r, w):
            if fd >= 0:
                os.close(fd)
        self._r = -1

    def __del__(self) -> None:
        if getattr(self, "_r", -1) >= 0:
            self.close()


class RingBuffer:
    """Preallocated mono float32 frames; positions are monotonically increasing frame counts."""

    def __init__(self, capacity_frames: int) -> None:
        if capacity_frames <= 0:
            raise ValueError(f"ring buffer capacity must be > 0 frames, got {capacity_frames}")
        self.capacity_frames = int(capacity_frames)
        self.data = np.zeros(self.capacity_frames, dtype=np.float32)
        self.pos = np.zeros(3, dtype=np.int64)  # [written (producer), read (consumer), overruns (producer)]

    # --- producer (audio callback) ---------------------------------------------------------------
    def write(self, frames: np.ndarray) -> bool:
        """Copy a 1-D block in (a strided view of a device buffer is fine). False if dropped (full)."""
        return bool(rt.ring_write(self.data, self.pos, frames))

    @property
    def overruns(self) -> int:
        """Blocks dropped because the consumer fell behind."""
        return int(self.pos[rt.R_OVERRUNS])

    # --- consumer (worker thread) ----------------------------------------------------------------
    @property
    def available_frames(self) -> int:
        return int(self.pos[rt.R_WRITE] - self.pos[rt.R_READ])

    @property
    def frames_written(self) -> int:
        return int(self.pos[rt.R_WRITE])

    @property
    def frames_read(self) -> int:
        return int(self.pos[rt.R_READ])

    def read_into(self, out: np.ndarray) -> bool:
        """Fill `out` (1-D float32) with the next frames; False (and `out` untouched) if not enough."""
        return bool(rt.ring_read(self.data, self.pos, out))

    def clear(self) -> None:
        """Consumer side: skip everything written so far (e.g. after a device restart)."""
        self.pos[rt.R_READ] = self.pos[rt.R_WRITE]
