"""The compiled real-time side: ring buffer, frame exchange, counters and the input callback as numba code
that PortAudio calls directly, without Python and so without the GIL.

Input: arrays shared with the Python objects that own them (`RingBuffer`, `FrameExchange`,
`StreamCounters`, `TimingHistogram`, `WakePipe`), and PortAudio's callback arguments. Output: the same
arrays updated in place (frames copied, positions, counters, timings); a wake-up byte into a pipe.

Why compiled: a Python callback must take the GIL first. When the worker thread holds it and is itself
preempted (a loaded core), the audio thread waits for the worker to be scheduled again: a priority
inversion that made the live server miss JACK cycles more often than an empty client did. A C callback
(`numba.cfunc`, handed to PortAudio through sounddevice's `_StreamBase`) waits for nothing: it copies,
counts, and makes one non-blocking `write` (libc, called directly).

Rules: nothing here allocates (`_nrt=False`: no reference counting, no array creation), takes a lock,
logs or raises. Every jitted function of this file calls only functions of this file, so numba's on-disk
cache (which watches only the defining file) can never run stale code; what also calls the synth
kernel (`server.rt_output`) is compiled at first use instead. Memory order between the callback and the
Python side: a fence between a buffer's data and its position or sequence number (`fence`), so the
exchange is correct on weakly ordered CPUs (ARM) too.

Userdata of the input cfunc: an int64 table (`IN_*` indices) of the arrays' addresses and sizes, built
by `server.callbacks.InputCallback`, which keeps the arrays alive.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import time

import numba
import numpy as np
from llvmlite import ir
from numba import carray, types
from numba.core import cgutils
from numba.extending import intrinsic

CLOCK = time.CLOCK_MONOTONIC  # the clock of every timestamp here (`monotonic_ns` reads it from Python)

# PortAudio's PaStreamCallbackFlags
IN_UNDERFLOW, IN_OVERFLOW, OUT_UNDERFLOW, OUT_OVERFLOW = 1, 2, 4, 8
XRUN_BITS = IN_UNDERFLOW | IN_OVERFLOW | OUT_UNDERFLOW | OUT_OVERFLOW
# StreamCounters' int64 array
C_CALLBACKS, C_XRUN_CALLBACKS, C_IN_OVER, C_IN_UNDER, C_OUT_OVER, C_OUT_UNDER, C_LAST_NS, C_THREAD = range(8)
N_COUNTERS = 8  # C_THREAD: the pthread id of the newest callback (`server.rt_thread` may make it real-time)
# RingBuffer's positions: frames written (producer), frames read (consumer), blocks dropped (producer)
R_WRITE, R_READ, R_OVERRUNS = range(3)
# FrameExchange's state: the sequence number (odd while the writer copies), reads that gave up
X_SEQ, X_STALE = range(2)
X_READ_TRIES = 4
# TimingHistogram: log-spaced bins 1% wide from 1 µs; acc = [count, total µs, max µs]
H_BIN_RATIO = 1.01
H_MIN_US = 1.0
H_N_BINS = int(math.ceil(math.log(1e7 / H_MIN_US) / math.log(H_BIN_RATIO))) + 2
H_INV_LOG_RATIO = 1.0 / math.log(H_BIN_RATIO)
H_COUNT, H_TOTAL, H_MAX = range(3)
# the input cfunc's userdata table
(IN_RING, IN_RING_FRAMES, IN_RING_POS, IN_COUNTERS, IN_HIST_COUNTS, IN_HIST_ACC, IN_WAKE_FD, IN_WAKE_FULL,
 IN_WAKE_BYTE, IN_CLOCK, IN_CHANNELS, IN_CHANNEL) = range(12)  # fmt: skip
N_IN_TABLE = 12

# int PaStreamCallback(const void *in, void *out, unsigned long frames, const void *time, flags, void *user)
PA_CALLBACK = types.int32(types.voidptr, types.voidptr, types.uint64, types.voidptr, types.uint64, types.voidptr)
# (these keep the GIL when Python calls them: too short to be worth taking it back afterwards)
_JIT = {"cache": True, "_nrt": False, "error_model": "numpy"}


def monotonic_ns() -> int:
    """The callbacks' clock, read from Python (`C_LAST_NS` is on it)."""
    return time.clock_gettime_ns(CLOCK)


@intrinsic
def fence(typingctx):  # type: ignore[no-untyped-def]
    """A full memory fence: no load or store moves across it (compiler and CPU)."""

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def voidptr(typingctx, address):  # type: ignore[no-untyped-def]
    """An int64 address (from a userdata table) as a void pointer, for `numba.carray`."""

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(types.int64), codegen


def _check_libc() -> None:
    """The two C functions the compiled code calls by name (LLVM resolves them in the process)."""
    libc = ctypes.CDLL(None) if ctypes.util.find_library("c") is None else ctypes.CDLL(ctypes.util.find_library("c"))
    for name in ("write", "clock_gettime", "pthread_self"):
        if not hasattr(libc, name):
            raise ImportError(f"server.rt_kernel needs the C library's `{name}` (Linux or macOS)")


_check_libc()


@intrinsic
def _c_write(typingctx, fd, buffer):  # type: ignore[no-untyped-def]
    """libc write(fd, buffer's first byte, 1); the result (-1: error, e.g. EAGAIN)."""

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        size_t = context.get_value_type(types.uintp)
        fnty = ir.FunctionType(size_t, [ir.IntType(32), cgutils.voidptr_t, size_t])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "write")
        data = context.make_array(sig.args[1])(context, builder, args[1]).data
        fd32 = builder.trunc(args[0], ir.IntType(32))
        return builder.call(fn, [fd32, builder.bitcast(data, cgutils.voidptr_t), ir.Constant(size_t, 1)])

    return types.intp(types.int64, buffer), codegen


@intrinsic
def _c_clock_gettime(typingctx, clock_id, timespec):  # type: ignore[no-untyped-def]
    """libc clock_gettime(clock_id, timespec's data as struct timespec *)."""

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(32), cgutils.voidptr_t])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
        data = context.make_array(sig.args[1])(context, builder, args[1]).data
        builder.call(fn, [builder.trunc(args[0], ir.IntType(32)), builder.bitcast(data, cgutils.voidptr_t)])
        return context.get_dummy_value()

    return types.void(types.int64, timespec), codegen


@intrinsic
def _c_pthread_self(typingctx):  # type: ignore[no-untyped-def]
    """libc pthread_self(): the calling thread's id (no system call)."""

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        fnty = ir.FunctionType(ir.IntType(64), [])
        return builder.call(cgutils.get_or_insert_function(builder.module, fnty, "pthread_self"), [])

    return types.int64(), codegen


@numba.njit(**_JIT)
def now_ns(clock: np.ndarray) -> int:
    """CLOCK_MONOTONIC in ns; `clock` is a preallocated int64[2] (a struct timespec)."""
    _c_clock_gettime(CLOCK, clock)
    return clock[0] * 1_000_000_000 + clock[1]


@numba.njit(**_JIT)
def hist_record(counts: np.ndarray, acc: np.ndarray, value_us: float) -> None:
    if value_us <= H_MIN_US:
        i = 0
    else:
        i = min(H_N_BINS - 1, int(math.log(value_us / H_MIN_US) * H_INV_LOG_RATIO) + 1)
    counts[i] += 1
    acc[H_COUNT] += 1.0
    acc[H_TOTAL] += value_us
    if value_us > acc[H_MAX]:
        acc[H_MAX] = value_us


@numba.njit(**_JIT)
def thread_id() -> int:
    """The calling thread's pthread id (what a callback records in `C_THREAD`)."""
    return _c_pthread_self()


@numba.njit(**_JIT)
def count_status(counters: np.ndarray, flags: int) -> None:
    """PortAudio's status flags of one callback into the stream's counters."""
    if flags & XRUN_BITS:
        counters[C_XRUN_CALLBACKS] += 1
    if flags & IN_OVERFLOW:
        counters[C_IN_OVER] += 1
    if flags & IN_UNDERFLOW:
        counters[C_IN_UNDER] += 1
    if flags & OUT_OVERFLOW:
        counters[C_OUT_OVER] += 1
    if flags & OUT_UNDERFLOW:
        counters[C_OUT_UNDER] += 1


@numba.njit(**_JIT)
def ring_write(data: np.ndarray, pos: np.ndarray, frames: np.ndarray) -> bool:
    """Producer: copy a 1-D block in (strided is fine); False, and counted, if it does not fit."""
    n = frames.shape[0]
    capacity = data.shape[0]
    start = pos[R_WRITE]
    if start + n - pos[R_READ] > capacity:
        pos[R_OVERRUNS] += 1
        return False
    i = start % capacity
    for j in range(n):
        data[i] = frames[j]
        i += 1
        if i == capacity:
            i = 0
    fence()  # the frames before the position that publishes them
    pos[R_WRITE] = start + n
    return True


@numba.njit(**_JIT)
def ring_read(data: np.ndarray, pos: np.ndarray, out: np.ndarray) -> bool:
    """Consumer: fill `out` with the next frames; False (and `out` untouched) if not enough."""
    n = out.shape[0]
    capacity = data.shape[0]
    start = pos[R_READ]
    if pos[R_WRITE] - start < n:
        return False
    fence()  # the position before the frames it published
    i = start % capacity
    for j in range(n):
        out[j] = data[i]
        i += 1
        if i == capacity:
            i = 0
    fence()  # done reading before the producer may overwrite
    pos[R_READ] = start + n
    return True


@numba.njit(**_JIT)
def frame_publish(shared: np.ndarray, state: np.ndarray, frame: np.ndarray) -> None:
    """Writer (worker): sequence lock, odd while copying."""
    state[X_SEQ] += 1
    fence()
    for i in range(shared.shape[0]):
        shared[i] = frame[i]
    fence()
    state[X_SEQ] += 1


@numba.njit(**_JIT)
def frame_read(shared: np.ndarray, state: np.ndarray, out: np.ndarray) -> bool:
    """Reader (output callback): the latest whole frame into `out`, or False (kept, counted) after a few
    tries that met the writer mid-copy. Never waits."""
    for _ in range(X_READ_TRIES):
        seq = state[X_SEQ]
        fence()
        if seq & 1:
            continue
        for i in range(out.shape[0]):
            out[i] = shared[i]
        fence()
        if state[X_SEQ] == seq:
            return True
    state[X_STALE] += 1
    return False


@numba.njit(**_JIT)
def wake(fd: np.ndarray, full: np.ndarray, byte: np.ndarray) -> None:
    """One byte into the non-blocking pipe `fd[0]` (-1: closed, a no-op); a full pipe is counted."""
    if fd[0] >= 0 and _c_write(fd[0], byte) < 0:
        full[0] += 1


@numba.njit(**_JIT)
def input_block(
    indata: np.ndarray, frames: int, channel: int, flags: int, ring: np.ndarray, ring_pos: np.ndarray,
    counters: np.ndarray, hist_counts: np.ndarray, hist_acc: np.ndarray, wake_fd: np.ndarray,
    wake_full: np.ndarray, wake_byte: np.ndarray, clock: np.ndarray,
) -> None:  # fmt: skip
    """The input callback: channel `channel` of `indata` [frames, channels] into the ring, counted,
    timed, and the worker woken."""
    t0 = now_ns(clock)
    if flags:
        count_status(counters, flags)
    if 0 <= channel < indata.shape[1]:  # (checked when the stream opens; never read out of bounds)
        ring_write(ring, ring_pos, indata[:frames, channel])
    counters[C_CALLBACKS] += 1
    counters[C_LAST_NS] = t0
    counters[C_THREAD] = _c_pthread_self()
    wake(wake_fd, wake_full, wake_byte)
    hist_record(hist_counts, hist_acc, (now_ns(clock) - t0) * 1e-3)


@functools.cache
def input_callback() -> numba.core.ccallback.CFunc:
    """The cfunc PortAudio calls (loaded from numba's cache or compiled at the first call): unpack the
    userdata table into arrays, then `input_block`."""

    @numba.cfunc(PA_CALLBACK, nopython=True, cache=True, error_model="numpy")
    def callback(iptr, optr, frames, time_info, flags, user):  # type: ignore[no-untyped-def]
        t = carray(user, (N_IN_TABLE,), np.int64)
        indata = carray(iptr, (frames, t[IN_CHANNELS]), np.float32)
        input_block(
            indata, frames, t[IN_CHANNEL], flags,
            carray(voidptr(t[IN_RING]), (t[IN_RING_FRAMES],), np.float32),
            carray(voidptr(t[IN_RING_POS]), (3,), np.int64),
            carray(voidptr(t[IN_COUNTERS]), (N_COUNTERS,), np.int64),
            carray(voidptr(t[IN_HIST_COUNTS]), (H_N_BINS,), np.int64),
            carray(voidptr(t[IN_HIST_ACC]), (3,), np.float64),
            carray(voidptr(t[IN_WAKE_FD]), (1,), np.int64),
            carray(voidptr(t[IN_WAKE_FULL]), (1,), np.int64),
            carray(voidptr(t[IN_WAKE_BYTE]), (1,), np.uint8),
            carray(voidptr(t[IN_CLOCK]), (2,), np.int64),
        )  # fmt: skip
        return 0

    return callback


def status_bits(status: object) -> int:
    """PortAudio's flag bits from a `sounddevice.CallbackFlags` (or a stand-in with its four attributes)."""
    if not status:
        return 0
    return (
        (IN_UNDERFLOW if getattr(status, "input_underflow", False) else 0)
        | (IN_OVERFLOW if getattr(status, "input_overflow", False) else 0)
        | (OUT_UNDERFLOW if getattr(status, "output_underflow", False) else 0)
        | (OUT_OVERFLOW if getattr(status, "output_overflow", False) else 0)
    )


def warm() -> None:
    """Load (or compile) what Python calls here with the types the live loop uses, so that no block pays it."""
    data, pos = np.zeros(8, dtype=np.float32), np.zeros(3, dtype=np.int64)
    block = np.zeros(4, dtype=np.float32)
    ring_write(data, pos, block)
    ring_write(data, pos, np.zeros((4, 2), dtype=np.float32)[:, 0])  # a channel of a device block
    ring_read(data, pos, block)
    state = np.zeros(2, dtype=np.int64)
    frame_publish(data, state, data)
    frame_read(data, state, data)
    hist_record(np.zeros(H_N_BINS, dtype=np.int64), np.zeros(3), 1.0)
    count_status(np.zeros(N_COUNTERS, dtype=np.int64), 0)
    wake(np.full(1, -1, dtype=np.int64), np.zeros(1, dtype=np.int64), np.ones(1, dtype=np.uint8))
