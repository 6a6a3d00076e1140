"""The compiled output callback: latest parameter frame -> streaming Serum-lite voice -> output block.

Input: the `FrameExchange` arrays (frame `[24 params | note | gate | onsets]` under a sequence lock),
a `synth.stream.StreamingVoice`'s state arrays, PortAudio's output buffer [frames, channels] float32.
Output: the block on every channel, the mono block into the recorder's ring, counters and timing.

PortAudio calls `output_callback()` (a `numba.cfunc`) directly, without Python and without the GIL;
`OutputCallback.__call__` runs `output_block`, the same compiled code, when a file clocks the synth.
Nothing allocates, locks, logs or raises. These functions call the synth kernel
(`synth.dsp.kernel`), so they are compiled once per process at first use (about a second) rather than
cached on disk: numba's cache would not notice an edit of the kernel's file.

Userdata of the cfunc: an int64 table (`O_*` indices) of the arrays' addresses and sizes, built by
`server.callbacks.OutputCallback`, which keeps the arrays alive.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import carray

from server import rt_kernel as rt
from server.control import FRAME_SIZE, GATE_INDEX, NOTE_INDEX, ONSETS_INDEX
from synth.dsp import kernel as k
from synth.params import N_PARAMS

# what the callback remembers between frames (float64 array `last`)
L_SEEN, L_ONSETS, L_GATE, L_NOTE, L_RATE = range(5)
N_LAST = 5
# the cfunc's userdata table
(O_SHARED, O_XSTATE, O_FRAME, O_LAST, O_ST, O_CTL, O_PHASES, O_INCS, O_SMOOTH, O_TARGET, O_TABLES, O_MORPHED,
 O_KEY, O_SCRATCH, O_WIRE, O_PERM_BUF, O_MONO, O_MONO_FRAMES, O_RECORD, O_RECORD_FRAMES, O_RECORD_POS,
 O_HAS_RECORD, O_COUNTERS, O_HIST_COUNTS, O_HIST_ACC, O_CLOCK, O_CHANNELS, O_UNISON, O_TABLE_ROWS,
 O_TABLE_LEVELS, O_TABLE_SIZE, O_MORPH_SIZE, O_CHUNK) = range(33)  # fmt: skip
N_OUT_TABLE = 33
_JIT = {"nogil": False, "_nrt": False, "error_model": "numpy"}  # not cached: see the module's docstring


@numba.njit(**_JIT)
def apply_frame(
    frame: np.ndarray, last: np.ndarray, st: np.ndarray, ctl: np.ndarray, phases: np.ndarray, target: np.ndarray,
    wire: np.ndarray, perm_buf: np.ndarray,
) -> None:  # fmt: skip
    """A new frame to the voice: parameters, then note and gate (a new onset count retriggers, a new
    note with the same count glides, a closed gate releases)."""
    for i in range(N_PARAMS):
        wire[i] = frame[i]
    k.set_target(wire, k.PERM, perm_buf, k.SPEC, target, st)
    gate = frame[GATE_INDEX]
    note = float(frame[NOTE_INDEX])
    onsets = frame[ONSETS_INDEX]
    if gate > 0.5:
        if onsets != last[L_ONSETS]:
            k.note_on(st, ctl, phases, k.DESIGN, note)
        elif note != last[L_NOTE]:
            k.set_note(st, note)
    elif last[L_GATE] > 0.5:
        k.gate(st, ctl, False)
    last[L_ONSETS] = onsets
    last[L_GATE] = gate
    last[L_NOTE] = note


@numba.njit(**_JIT)
def output_block(
    outdata: np.ndarray, frames: int, flags: int, shared: np.ndarray, xstate: np.ndarray, frame: np.ndarray,
    last: np.ndarray, st: np.ndarray, ctl: np.ndarray, phases: np.ndarray, incs: np.ndarray, smooth: np.ndarray,
    target: np.ndarray, tables: np.ndarray, morphed: np.ndarray, key: np.ndarray, scratch: np.ndarray,
    wire: np.ndarray, perm_buf: np.ndarray, mono: np.ndarray, record: np.ndarray, record_pos: np.ndarray,
    has_record: bool, counters: np.ndarray, hist_counts: np.ndarray, hist_acc: np.ndarray, clock: np.ndarray,
) -> None:  # fmt: skip
    """The output callback: apply the newest frame if there is one, render `frames` samples into every
    channel of `outdata` [frames, channels] (in pieces of at most `mono`'s length) and the record ring."""
    t0 = rt.now_ns(clock)
    if flags:
        rt.count_status(counters, flags)
    version = xstate[rt.X_SEQ] >> 1
    if version != last[L_SEEN]:
        last[L_SEEN] = version
        if rt.frame_read(shared, xstate, frame):
            apply_frame(frame, last, st, ctl, phases, target, wire, perm_buf)
    done = 0
    while done < frames:
        n = min(frames - done, mono.shape[0])
        k.stream_block(
            st, ctl, phases, incs, smooth, target, tables, morphed, key, scratch, k.SPEC, k.DESIGN, mono, n,
            last[L_RATE],
        )  # fmt: skip
        for c in range(outdata.shape[1]):
            for i in range(n):
                outdata[done + i, c] = mono[i]
        if has_record:
            rt.ring_write(record, record_pos, mono[:n])
        done += n
    counters[rt.C_CALLBACKS] += 1
    counters[rt.C_LAST_NS] = t0
    counters[rt.C_THREAD] = rt.thread_id()
    rt.hist_record(hist_counts, hist_acc, (rt.now_ns(clock) - t0) * 1e-3)


@functools.cache
def output_callback() -> numba.core.ccallback.CFunc:
    """The cfunc PortAudio calls (compiled at the first call of this function)."""

    @numba.cfunc(rt.PA_CALLBACK, nopython=True, error_model="numpy")
    def callback(iptr, optr, frames, time_info, flags, user):  # type: ignore[no-untyped-def]
        t = carray(user, (N_OUT_TABLE,), np.int64)
        unison, rows, levels, size = t[O_UNISON], t[O_TABLE_ROWS], t[O_TABLE_LEVELS], t[O_TABLE_SIZE]
        output_block(
            carray(optr, (frames, t[O_CHANNELS]), np.float32), frames, flags,
            carray(rt.voidptr(t[O_SHARED]), (FRAME_SIZE,), np.float32),
            carray(rt.voidptr(t[O_XSTATE]), (2,), np.int64),
            carray(rt.voidptr(t[O_FRAME]), (FRAME_SIZE,), np.float32),
            carray(rt.voidptr(t[O_LAST]), (N_LAST,), np.float64),
            carray(rt.voidptr(t[O_ST]), (k.N_STATE,), np.float64),
            carray(rt.voidptr(t[O_CTL]), (k.N_CONTROL,), np.float64),
            carray(rt.voidptr(t[O_PHASES]), (2, unison), np.float64),
            carray(rt.voidptr(t[O_INCS]), (2, unison), np.float64),
            carray(rt.voidptr(t[O_SMOOTH]), (N_PARAMS,), np.float64),
            carray(rt.voidptr(t[O_TARGET]), (N_PARAMS,), np.float64),
            carray(rt.voidptr(t[O_TABLES]), (rows, levels, size), np.float64),
            carray(rt.voidptr(t[O_MORPHED]), (2, 2, t[O_MORPH_SIZE]), np.float32),
            carray(rt.voidptr(t[O_KEY]), (2, 2), np.float64),
            carray(rt.voidptr(t[O_SCRATCH]), (3, t[O_CHUNK]), np.float64),
            carray(rt.voidptr(t[O_WIRE]), (N_PARAMS,), np.float64),
            carray(rt.voidptr(t[O_PERM_BUF]), (N_PARAMS,), np.float64),
            carray(rt.voidptr(t[O_MONO]), (t[O_MONO_FRAMES],), np.float32),
            carray(rt.voidptr(t[O_RECORD]), (t[O_RECORD_FRAMES],), np.float32),
            carray(rt.voidptr(t[O_RECORD_POS]), (3,), np.int64),
            t[O_HAS_RECORD] != 0,
            carray(rt.voidptr(t[O_COUNTERS]), (rt.N_COUNTERS,), np.int64),
            carray(rt.voidptr(t[O_HIST_COUNTS]), (rt.H_N_BINS,), np.int64),
            carray(rt.voidptr(t[O_HIST_ACC]), (3,), np.float64),
            carray(rt.voidptr(t[O_CLOCK]), (2,), np.int64),
        )  # fmt: skip
        return 0

    return callback
