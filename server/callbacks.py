"""The two real-time callbacks: input block -> ring buffer; latest parameter frame -> synth -> output block.

Input (`InputCallback`): `(indata [frames, channels] float32, frames, time, status)` from a
sounddevice InputStream, or from the file driver through the very same call.
Output: one channel copied into the worker's `RingBuffer`; xruns counted from `status`.

Input (`OutputCallback`): `(outdata [frames, channels] float32, frames, time, status)` from a
sounddevice OutputStream, or from the file driver. It reads the latest frame from the
`FrameExchange` (parameters, note, gate), drives the `StreamingVoice`, fills `outdata` (every
channel) and copies the mono block into the recorder's ring.

Rules (tests enforce them): no allocation of buffers (only preallocated arrays and views), no lock,
no logging, no torch, no file or socket I/O. The one system call: the input callback's wake-up, a
`write` of one preallocated byte to a non-blocking pipe (it cannot block; a full pipe is counted,
never raised). Timing of each call goes into a preallocated histogram.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from server.control import FRAME_SIZE, GATE_INDEX, NOTE_INDEX, ONSETS_INDEX, FrameExchange
from server.ring_buffer import RingBuffer, WakePipe
from server.stats import StreamCounters
from synth.params import N_PARAMS


class NoStatus:
    """A falsy stand-in for `sounddevice.CallbackFlags` (what the file driver passes)."""

    input_overflow = input_underflow = output_overflow = output_underflow = False

    def __bool__(self) -> bool:
        return False


NO_STATUS = NoStatus()


class InputCallback:
    """Copies channel `channel` of each input block into the ring buffer, then wakes the consumer
    (`wake`, the worker's `WakePipe`: one non-blocking byte into a pipe, see `server.ring_buffer`)."""

    def __init__(
        self, ring: RingBuffer, counters: StreamCounters, channel: int = 0, wake: WakePipe | None = None
    ) -> None:
        self.ring = ring
        self.counters = counters
        self.channel = int(channel)
        self.wake = wake
        self.last_call_ns = 0  # perf_counter_ns of the newest block (the device supervisor watches it)

    def __call__(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        t0 = time.perf_counter_ns()
        counters = self.counters
        if status:
            counters.count_status(status)
        self.ring.write(indata[:frames, self.channel])
        counters.callbacks += 1
        self.last_call_ns = t0
        if self.wake is not None:
            self.wake.wake()
        counters.callback_us.record((time.perf_counter_ns() - t0) * 1e-3)


class OutputCallback:
    """Plays the latest parameter frame through the streaming voice."""

    def __init__(
        self,
        voice: Any,
        exchange: FrameExchange,
        counters: StreamCounters,
        max_block_size: int,
        record: RingBuffer | None = None,
    ) -> None:
        self.voice = voice
        self.exchange = exchange
        self.counters = counters
        self.record = record
        self._mono = np.zeros(max_block_size, dtype=np.float32)
        self._frame = np.zeros(FRAME_SIZE, dtype=np.float32)
        self._params = self._frame[:N_PARAMS]
        self._seen_version = -1
        self._onsets = 0.0
        self._gate = 0.0
        self._note = -1.0
        self.last_call_ns = 0

    def __call__(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        t0 = time.perf_counter_ns()
        counters = self.counters
        if status:
            counters.count_status(status)
        if self.exchange.version != self._seen_version:
            self._seen_version = self.exchange.version
            if self.exchange.read_into(self._frame):
                self._apply_frame()
        mono = self._mono[:frames]
        self.voice.process(mono)
        outdata[:frames] = mono[:, None]
        if self.record is not None:
            self.record.write(mono)
        counters.callbacks += 1
        self.last_call_ns = t0
        counters.callback_us.record((time.perf_counter_ns() - t0) * 1e-3)

    def _apply_frame(self) -> None:
        frame = self._frame
        voice = self.voice
        voice.set_params(self._params)
        gate = frame[GATE_INDEX]
        note = float(frame[NOTE_INDEX])
        onsets = frame[ONSETS_INDEX]
        if gate > 0.5:
            if onsets != self._onsets:
                voice.note_on(note)
            elif note != self._note:
                voice.set_note(note)
        elif self._gate > 0.5:
            voice.note_off()
        self._onsets = onsets
        self._gate = gate
        self._note = note
