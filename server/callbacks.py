"""The two real-time callbacks: input block -> ring buffer; latest parameter frame -> synth -> output block.

Input (`InputCallback`): `(indata [frames, channels] float32, frames, time, status)`, from PortAudio
through the compiled `server.rt_kernel.input_callback`, or from the file driver through
`__call__`, which runs the same compiled `input_block`.
Output: one channel copied into the worker's `RingBuffer`; xruns counted from the status flags; the
worker woken (one non-blocking byte into its `WakePipe`).

Input (`OutputCallback`): `(outdata [frames, channels] float32, frames, time, status)`. It reads the
latest frame from the `FrameExchange` (parameters, note, gate), drives the voice, fills `outdata`
(every channel) and copies the mono block into the recorder's ring. With a `StreamingVoice` this is
compiled (`server.rt_output`), called by PortAudio directly or by the file driver through `__call__`;
any other voice object (a test double, a custom voice with the same methods) runs in Python, and a
device stream then calls it through sounddevice (with the GIL).

Rules (tests enforce them): no allocation of buffers, no lock, no logging, no torch, no file or socket
I/O; the compiled callbacks take no GIL either. The one system call: the input callback's wake-up.
`c_callback` gives the address of the compiled function and of its userdata table (the arrays'
addresses), which `server.audio_io.DeviceAudio` hands to PortAudio; the object keeps them alive.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from server import rt_kernel as rt
from server import rt_output as ro
from server.control import FRAME_SIZE, GATE_INDEX, NOTE_INDEX, ONSETS_INDEX, FrameExchange
from server.ring_buffer import RingBuffer, WakePipe
from server.stats import StreamCounters
from synth.params import N_PARAMS
from synth.stream import StreamingVoice


class NoStatus:
    """A falsy stand-in for `sounddevice.CallbackFlags` (what the file driver passes)."""

    input_overflow = input_underflow = output_overflow = output_underflow = False

    def __bool__(self) -> bool:
        return False


NO_STATUS = NoStatus()


# int callback(const void *in, void *out, unsigned long frames, const void *time, flags, void *user)
_PA_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p
)


def _addresses(*arrays: np.ndarray) -> list[int]:
    for a in arrays:
        if not a.flags.c_contiguous:
            raise ValueError(f"a compiled callback needs contiguous arrays, got strides {a.strides}")
    return [a.ctypes.data for a in arrays]


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
        self._wake_fd = wake.fd if wake is not None else np.full(1, -1, dtype=np.int64)
        self._wake_full = wake.full_count if wake is not None else np.zeros(1, dtype=np.int64)
        self._wake_byte = wake.byte if wake is not None else np.ones(1, dtype=np.uint8)
        self._clock = np.zeros(2, dtype=np.int64)
        self._table = np.zeros(rt.N_IN_TABLE, dtype=np.int64)

    def __call__(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        hist = self.counters.callback_us
        rt.input_block(
            indata, frames, self.channel, rt.status_bits(status), self.ring.data, self.ring.pos, self.counters.values,
            hist.counts, hist.acc, self._wake_fd, self._wake_full, self._wake_byte, self._clock,
        )  # fmt: skip

    def c_callback(self, channels: int) -> tuple[int, int]:
        """(address of the compiled callback, address of its userdata) for a stream of `channels` channels."""
        if not 0 <= self.channel < channels:
            raise ValueError(f"input channel {self.channel} outside the stream's {channels} channel(s)")
        hist = self.counters.callback_us
        t = self._table
        t[rt.IN_RING], t[rt.IN_RING_POS], t[rt.IN_COUNTERS], t[rt.IN_HIST_COUNTS], t[rt.IN_HIST_ACC] = _addresses(
            self.ring.data, self.ring.pos, self.counters.values, hist.counts, hist.acc
        )
        t[rt.IN_WAKE_FD], t[rt.IN_WAKE_FULL], t[rt.IN_WAKE_BYTE], t[rt.IN_CLOCK] = _addresses(
            self._wake_fd, self._wake_full, self._wake_byte, self._clock
        )
        t[rt.IN_RING_FRAMES], t[rt.IN_CHANNELS], t[rt.IN_CHANNEL] = self.ring.capacity_frames, channels, self.channel
        return rt.input_callback().address, t.ctypes.data


class OutputCallback:
    """Plays the latest parameter frame through the voice (compiled for a `StreamingVoice`)."""

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
        self.compiled = isinstance(voice, StreamingVoice)
        self._mono = np.zeros(max_block_size, dtype=np.float32)
        self._frame = np.zeros(FRAME_SIZE, dtype=np.float32)
        self._params = self._frame[:N_PARAMS]
        rate = float(getattr(voice, "sample_rate_hz", 0.0))
        self._last = np.array([-1.0, 0.0, 0.0, -1.0, rate])  # seen version, onsets, gate, note, rate (rt_output.L_*)
        self._record_data = record.data if record is not None else np.zeros(1, dtype=np.float32)
        self._record_pos = record.pos if record is not None else np.zeros(3, dtype=np.int64)
        self._clock = np.zeros(2, dtype=np.int64)
        self._table = np.zeros(ro.N_OUT_TABLE, dtype=np.int64)
        self._table_address = self._table.ctypes.data
        self._cfunction: Any = None  # set by `warm` (compiled at the first call)

    def __call__(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if not self.compiled:
            self._call_python(outdata, frames, status)
            return
        if outdata.dtype != np.float32 or outdata.ndim != 2 or not outdata.flags.c_contiguous or frames > len(outdata):
            raise ValueError(
                f"OutputCallback: outdata must be C-contiguous float32 [frames, channels], got {outdata.dtype} "
                f"{outdata.shape} for {frames} frames"
            )
        if self._cfunction is None:
            self.warm()
        self._table[ro.O_CHANNELS] = outdata.shape[1]
        # the very function PortAudio calls, through ctypes (which releases the GIL around it)
        self._cfunction(None, outdata.ctypes.data, frames, None, rt.status_bits(status), self._table_address)

    def warm(self) -> None:
        """Compile the callback now (about a second, once per process), not at the first block."""
        if self.compiled and self._cfunction is None:
            self._fill_table()
            self._cfunction = _PA_CALLBACK(ro.output_callback().address)

    def c_callback(self, channels: int) -> tuple[int, int] | None:
        """(address of the compiled callback, address of its userdata) for `channels` channels; None if
        the voice is not a `StreamingVoice` (then the stream calls `__call__`)."""
        if not self.compiled:
            return None
        self.warm()
        self._table[ro.O_CHANNELS] = channels
        return ro.output_callback().address, self._table_address

    def _fill_table(self) -> None:
        s, hist, t = self.voice.state, self.counters.callback_us, self._table
        arrays = {
            ro.O_SHARED: self.exchange.shared, ro.O_XSTATE: self.exchange.state, ro.O_FRAME: self._frame,
            ro.O_LAST: self._last, ro.O_ST: s.st, ro.O_CTL: s.ctl, ro.O_PHASES: s.phases, ro.O_INCS: s.incs,
            ro.O_SMOOTH: s.smooth, ro.O_TARGET: s.target, ro.O_TABLES: s.tables, ro.O_MORPHED: s.morphed,
            ro.O_KEY: s.table_key, ro.O_SCRATCH: s.scratch, ro.O_WIRE: self.voice.wire,
            ro.O_PERM_BUF: self.voice.perm_buffer, ro.O_MONO: self._mono, ro.O_RECORD: self._record_data,
            ro.O_RECORD_POS: self._record_pos, ro.O_COUNTERS: self.counters.values, ro.O_HIST_COUNTS: hist.counts,
            ro.O_HIST_ACC: hist.acc, ro.O_CLOCK: self._clock,
        }  # fmt: skip
        for index, address in zip(arrays, _addresses(*arrays.values()), strict=True):
            t[index] = address
        t[ro.O_MONO_FRAMES], t[ro.O_RECORD_FRAMES] = self._mono.shape[0], self._record_data.shape[0]
        t[ro.O_HAS_RECORD], t[ro.O_UNISON] = self.record is not None, s.phases.shape[1]
        t[ro.O_TABLE_ROWS], t[ro.O_TABLE_LEVELS], t[ro.O_TABLE_SIZE] = s.tables.shape
        t[ro.O_MORPH_SIZE], t[ro.O_CHUNK] = s.morphed.shape[2], s.scratch.shape[1]

    def _call_python(self, outdata: np.ndarray, frames: int, status: Any) -> None:
        """The same steps in Python, for a voice that is not a `StreamingVoice`."""
        t0 = rt.monotonic_ns()
        counters = self.counters
        if status:
            counters.count_status(status)
        if self.exchange.version != self._last[ro.L_SEEN]:
            self._last[ro.L_SEEN] = self.exchange.version
            if self.exchange.read_into(self._frame):
                self._apply_frame()
        mono = self._mono[:frames]
        self.voice.process(mono)
        outdata[:frames] = mono[:, None]
        if self.record is not None:
            self.record.write(mono)
        counters.values[rt.C_CALLBACKS] += 1
        counters.last_call_ns = t0
        counters.callback_us.record((rt.monotonic_ns() - t0) * 1e-3)

    def _apply_frame(self) -> None:
        frame, last, voice = self._frame, self._last, self.voice
        voice.set_params(self._params)
        gate, note, onsets = frame[GATE_INDEX], float(frame[NOTE_INDEX]), frame[ONSETS_INDEX]
        if gate > 0.5:
            if onsets != last[ro.L_ONSETS]:
                voice.note_on(note)
            elif note != last[ro.L_NOTE]:
                voice.set_note(note)
        elif last[ro.L_GATE] > 0.5:
            voice.note_off()
        last[ro.L_ONSETS], last[ro.L_GATE], last[ro.L_NOTE] = onsets, gate, note
