"""The real-time side: ring buffer, frame exchange, and the two callbacks' rules (no allocation,
no lock, no logging, no torch), called directly as PortAudio would call them."""

from __future__ import annotations

import re
import sys
import threading
import tracemalloc
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pytest

from server import rt_kernel, rt_output
from server.callbacks import NO_STATUS, InputCallback, OutputCallback
from server.control import FRAME_SIZE, GATE_INDEX, NOTE_INDEX, ONSETS_INDEX, FrameExchange
from server.ring_buffer import RingBuffer, WakePipe
from server.stats import LiveStats, StreamCounters, TimingHistogram
from synth.dsp import kernel as k
from synth.params import N_PARAMS, PARAM_INDEX
from synth.stream import StreamingVoice

BLOCK = 4096  # large, so that any per-call buffer allocation (16 KB) stands out from small objects


class Flags:
    def __init__(self, **flags: bool) -> None:
        self.input_overflow = flags.get("input_overflow", False)
        self.input_underflow = False
        self.output_overflow = False
        self.output_underflow = flags.get("output_underflow", False)

    def __bool__(self) -> bool:
        return self.input_overflow or self.output_underflow


def test_ring_buffer_wraps_and_drops_when_full() -> None:
    ring = RingBuffer(10)
    out = np.zeros(4, dtype=np.float32)
    assert ring.write(np.arange(6, dtype=np.float32))
    assert ring.read_into(out) and out.tolist() == [0, 1, 2, 3]
    assert ring.write(np.arange(6, 14, dtype=np.float32))  # wraps around the end
    assert not ring.write(np.ones(3, dtype=np.float32))  # 10 frames pending + 3 > capacity: dropped
    assert ring.overruns == 1
    got = np.zeros(10, dtype=np.float32)
    assert ring.read_into(got)
    assert got.tolist() == [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    assert not ring.read_into(out)  # empty: out untouched, False


def test_wake_pipe_wakes_a_sleeping_thread() -> None:
    pipe = WakePipe()
    assert not pipe.wait(0.0)
    woke: list[bool] = []
    t = threading.Thread(target=lambda: woke.append(pipe.wait(5.0)))
    t.start()
    pipe.wake()
    t.join(5.0)
    assert woke == [True]
    pipe.close()


def test_frame_exchange_gives_the_latest_whole_frame() -> None:
    ex = FrameExchange()
    out = np.zeros(FRAME_SIZE, dtype=np.float32)
    for value in (0.25, 0.75):
        ex.publish(np.full(FRAME_SIZE, value, dtype=np.float32))
    assert ex.read_into(out) and np.all(out == 0.75)
    ex.state[0] += 1  # a writer caught mid-copy: the reader keeps its frame and does not wait
    out[:] = 0.5
    assert not ex.read_into(out) and np.all(out == 0.5) and ex.stale_reads == 1


def test_histogram_percentiles_within_one_percent() -> None:
    hist = TimingHistogram()
    values = np.random.default_rng(0).uniform(10, 1000, 5000)
    for v in values:
        hist.record(float(v))
    for q in (50, 99):
        assert hist.percentile(q) == pytest.approx(np.percentile(values, q), rel=0.012)
    assert hist.max_us == pytest.approx(values.max())


def test_status_flags_count_as_xruns() -> None:
    stats = LiveStats(48000, BLOCK)
    cb = InputCallback(RingBuffer(4 * BLOCK), stats.input)
    block = np.zeros((BLOCK, 1), dtype=np.float32)
    cb(block, BLOCK, None, Flags(input_overflow=True))
    cb(block, BLOCK, None, NO_STATUS)
    assert stats.input.input_overflows == 1 and stats.xruns == 1 and stats.input.callbacks == 2
    for _ in range(4):  # the ring holds 4 blocks and nobody reads: the 5th and 6th are dropped
        cb(block, BLOCK, None, NO_STATUS)
    stats.ring_overruns = cb.ring.overruns
    assert cb.ring.overruns == 2 and stats.xruns == 3


def test_input_callback_copies_the_chosen_channel() -> None:
    ring = RingBuffer(1024)
    cb = InputCallback(ring, StreamCounters(), channel=1)
    block = np.stack([np.zeros(256), np.arange(256)], axis=1).astype(np.float32)
    cb(block, 256, None, NO_STATUS)
    out = np.zeros(256, dtype=np.float32)
    assert ring.read_into(out) and np.array_equal(out, np.arange(256))


def test_input_callback_wakes_the_worker_and_counts_a_full_pipe() -> None:
    ring, pipe = RingBuffer(1024), WakePipe()
    cb = InputCallback(ring, StreamCounters(), wake=pipe)
    assert not pipe.wait(0.0)
    cb(np.zeros((256, 1), dtype=np.float32), 256, None, NO_STATUS)
    assert pipe.wait(0.0)  # the byte is there: a worker sleeping in select wakes at once
    assert not pipe.wait(0.0)  # and was drained
    for _ in range(200_000):  # fill the pipe (64 KiB on Linux): EAGAIN is counted, never raised
        pipe.wake()
        if pipe.full:
            break
    assert pipe.full == 1
    cb(np.zeros((256, 1), dtype=np.float32), 256, None, NO_STATUS)
    assert pipe.full == 2
    pipe.close()
    cb(np.zeros((256, 1), dtype=np.float32), 256, None, NO_STATUS)  # closed (teardown): a no-op
    assert pipe.full == 2 and ring.available_frames == 768


def _output_setup(doubles: SimpleNamespace) -> tuple[OutputCallback, FrameExchange, RingBuffer, object]:
    voice = doubles.FakeVoice(48000, BLOCK)
    ex = FrameExchange()
    record = RingBuffer(64 * BLOCK)
    cb = OutputCallback(voice, ex, StreamCounters(), BLOCK, record=record)
    return cb, ex, record, voice


def _frame(volume: float, note: float, gate: float, onsets: float) -> np.ndarray:
    f = np.zeros(FRAME_SIZE, dtype=np.float32)
    f[PARAM_INDEX["master_volume"]] = volume
    f[NOTE_INDEX], f[GATE_INDEX], f[ONSETS_INDEX] = note, gate, onsets
    return f


def test_output_callback_follows_note_and_gate(doubles: SimpleNamespace) -> None:
    cb, ex, record, voice = _output_setup(doubles)
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    cb(out, BLOCK, None, NO_STATUS)
    assert not np.any(out)  # gate closed: silence
    ex.publish(_frame(0.8, 69.0, 1.0, 1.0))
    cb(out, BLOCK, None, NO_STATUS)
    assert voice.note_ons == 1 and voice.note == 69.0
    assert np.abs(out).max() == pytest.approx(0.8, rel=0.01)
    assert np.array_equal(out[:, 0], out[:, 1])  # every channel
    ex.publish(_frame(0.8, 72.0, 1.0, 1.0))  # same onset count: a glide, not a retrigger
    cb(out, BLOCK, None, NO_STATUS)
    assert voice.note_ons == 1 and voice.note == 72.0
    ex.publish(_frame(0.8, 72.0, 0.0, 1.0))
    cb(out, BLOCK, None, NO_STATUS)
    assert voice.note_offs == 1
    assert record.available_frames == 4 * BLOCK


def _measure_allocations(call: Callable[[], None], repeats: int = 200, warm_up: int = 5) -> tuple[int, int]:
    """(net bytes kept, peak bytes above the start) over `repeats` calls, after a warm-up."""
    for _ in range(warm_up):
        call()
    tracemalloc.start()
    tracemalloc.reset_peak()
    start, _ = tracemalloc.get_traced_memory()
    for _ in range(repeats):
        call()
    end, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return end - start, peak - start


@pytest.mark.parametrize("wakes", [False, True])
def test_input_callback_allocates_no_buffers(wakes: bool) -> None:
    ring, pipe = RingBuffer(8 * BLOCK), WakePipe()
    cb = InputCallback(ring, StreamCounters(), wake=pipe if wakes else None)
    block = np.random.default_rng(0).normal(size=(BLOCK, 2)).astype(np.float32)
    sink = np.zeros(BLOCK, dtype=np.float32)

    def one() -> None:
        cb(block, BLOCK, None, NO_STATUS)
        ring.read_into(sink)  # keep the ring from filling up (the worker's side; the pipe holds 64 KiB)

    kept, peak = _measure_allocations(one)
    assert kept < 1024 and peak < 2048, (kept, peak)  # one block alone would be 16 KB


def test_output_callback_allocates_no_buffers(doubles: SimpleNamespace) -> None:
    cb, ex, record, _voice = _output_setup(doubles)
    out = np.zeros((BLOCK, 1), dtype=np.float32)
    sink = np.zeros(BLOCK, dtype=np.float32)
    frames = [_frame(0.5, 60.0 + i % 3, 1.0, 1.0 + i // 7) for i in range(30)]
    state = {"i": 0}

    def one() -> None:
        state["i"] += 1
        ex.publish(frames[state["i"] % 30])  # a fresh frame every call: the whole apply path runs
        cb(out, BLOCK, None, NO_STATUS)
        record.read_into(sink)

    kept, peak = _measure_allocations(one)
    assert kept < 1024 and peak < 2048, (kept, peak)


def _calls_made(call: Callable[[], None]) -> set[str]:
    """Names of every Python and C function entered while `call()` runs (sys.setprofile)."""
    seen: set[str] = set()

    def profiler(frame: object, event: str, arg: object) -> None:
        if event == "call":
            code = frame.f_code  # type: ignore[attr-defined]
            seen.add(f"{frame.f_globals.get('__name__', '?')}.{code.co_name}")  # type: ignore[attr-defined]
        elif event == "c_call":
            seen.add(
                f"{getattr(arg, '__module__', None) or type(getattr(arg, '__self__', None)).__name__}."
                f"{getattr(arg, '__qualname__', getattr(arg, '__name__', '?'))}"
            )

    sys.setprofile(profiler)
    try:
        call()
    finally:
        sys.setprofile(None)
    return seen


@pytest.mark.parametrize("which", ["input", "output", "compiled output"])
def test_callbacks_take_no_lock_and_never_log_or_touch_torch(which: str, doubles: SimpleNamespace) -> None:
    stats = LiveStats(48000, BLOCK)
    if which == "input":
        cb = InputCallback(RingBuffer(8 * BLOCK), stats.input, wake=WakePipe())
    else:
        cb, ex, _record, _voice = _output_setup(doubles) if which == "output" else (*_voice_output(BLOCK), None)
        ex.publish(_frame(0.5, 64.0, 1.0, 1.0))
    data = np.zeros((BLOCK, 1), dtype=np.float32)
    flags = Flags(input_overflow=True, output_underflow=True)
    cb(data, BLOCK, None, flags)  # once before: numba loads its kernels at the first call (the server warms up)
    torch_before = "torch" in sys.modules
    seen = _calls_made(lambda: cb(data, BLOCK, None, flags))
    assert seen, "the profiler saw nothing"
    assert any("__call__" in name for name in seen)
    if which == "input":  # the compiled block (copy, count, the wake-up byte: its one system call)
        assert any(name.endswith(".input_block") for name in seen), seen
    forbidden = [
        n
        for n in seen
        if n.startswith(("logging.", "threading.", "torch", "queue.", "socket.", "soundfile.", "posix.", "select."))
        or "acquire" in n
        or ".wait" in n
        or "print" in n
        or "open" in n.lower()
        or re.match(r"(lock|RLock|_thread\.|Condition|Semaphore|Event)", n)
    ]
    assert forbidden == [], forbidden
    assert ("torch" in sys.modules) == torch_before  # nothing imported torch


def test_stats_dict_has_the_spec_keys() -> None:
    stats = LiveStats(48000, 512)
    stats.blocks, stats.control_ticks = 10, 3
    stats.block_us.record(120.0)
    d = stats.to_dict({"osc_sent": 7, "osc_rejected": 2})
    spec_keys = ("sample_rate", "block_size", "blocks", "control_ticks", "xruns", "block_us", "osc_sent")
    spec_keys += ("osc_rejected",)
    for key in spec_keys:
        assert key in d
    assert set(d["block_us"]) >= {"p50", "p99", "max"}
    assert (d["sample_rate"], d["block_size"], d["blocks"], d["osc_sent"], d["osc_rejected"]) == (48000, 512, 10, 7, 2)
    assert d["block_us"]["max"] == 120.0


def test_frame_layout_puts_note_and_gate_after_the_parameters() -> None:
    assert (NOTE_INDEX, GATE_INDEX, ONSETS_INDEX, FRAME_SIZE) == (N_PARAMS, N_PARAMS + 1, N_PARAMS + 2, N_PARAMS + 3)


def _voice_output(block: int = 256) -> tuple[OutputCallback, FrameExchange, RingBuffer]:
    ex, record = FrameExchange(), RingBuffer(1 << 16)
    return OutputCallback(StreamingVoice(48000, block), ex, StreamCounters(), block, record=record), ex, record


def test_the_compiled_output_callback_plays_what_the_streaming_voice_plays() -> None:
    """With a StreamingVoice the callback is compiled (what PortAudio calls); frame by frame it must do what
    driving the voice by hand does: parameters, a retrigger per new onset count, a glide, a release."""
    cb, ex, record = _voice_output()
    assert cb.compiled
    reference = StreamingVoice(48000, 256)
    params = np.random.default_rng(3).random(N_PARAMS).astype(np.float32)
    params[PARAM_INDEX["master_volume"]] = 0.8
    steps = [  # (frame or None, what the reference voice does)
        (None, lambda: None),
        ((69.0, 1.0, 1.0), lambda: (reference.set_params(params), reference.note_on(69.0))),
        ((72.0, 1.0, 1.0), lambda: (reference.set_params(params), reference.set_note(72.0))),
        (None, lambda: None),
        ((72.0, 1.0, 2.0), lambda: (reference.set_params(params), reference.note_on(72.0))),
        ((72.0, 0.0, 2.0), lambda: (reference.set_params(params), reference.note_off())),
        (None, lambda: None),
    ]
    out, expected = np.zeros((256, 2), dtype=np.float32), np.zeros(256, dtype=np.float32)
    played, heard = [], []
    for frame, by_hand in steps:
        if frame is not None:
            f = np.zeros(FRAME_SIZE, dtype=np.float32)
            f[:N_PARAMS] = params
            f[NOTE_INDEX], f[GATE_INDEX], f[ONSETS_INDEX] = frame
            ex.publish(f)
        by_hand()
        cb(out, 256, None, NO_STATUS)
        reference.process(expected)
        assert np.array_equal(out[:, 0], out[:, 1])  # every channel
        played.append(out[:, 0].copy())
        heard.append(expected.copy())
    np.testing.assert_array_equal(np.concatenate(played), np.concatenate(heard))  # bit for bit
    assert np.abs(np.concatenate(played)).max() > 0.01  # it did sound
    recorded = np.zeros(len(steps) * 256, dtype=np.float32)
    assert record.read_into(recorded)
    np.testing.assert_array_equal(recorded, np.concatenate(played))
    assert cb.counters.callbacks == len(steps) and cb.counters.callback_us.count == len(steps)
    cb(out, 256, None, Flags(output_underflow=True))
    assert cb.counters.output_underflows == 1 and cb.counters.xrun_callbacks == 1


def test_the_compiled_output_callback_renders_a_block_larger_than_its_buffer_in_pieces() -> None:
    cb, ex, _record = _voice_output(block=100)
    reference = StreamingVoice(48000, 256)
    f = _frame(0.7, 57.0, 1.0, 1.0)
    ex.publish(f)
    reference.set_params(f[:N_PARAMS])
    reference.note_on(57.0)
    out, expected = np.zeros((256, 1), dtype=np.float32), np.zeros(256, dtype=np.float32)
    cb(out, 256, None, NO_STATUS)
    reference.process(expected)
    np.testing.assert_array_equal(out[:, 0], expected)  # chunks align to the voice's own clock


def test_the_compiled_callbacks_refuse_what_they_cannot_read_safely() -> None:
    cb, _ex, _record = _voice_output()
    with pytest.raises(ValueError, match="C-contiguous float32"):
        cb(np.zeros((2, 256), dtype=np.float32).T, 256, None, NO_STATUS)  # a strided view
    with pytest.raises(ValueError, match="C-contiguous float32"):
        cb(np.zeros((128, 1), dtype=np.float32), 256, None, NO_STATUS)  # fewer frames than asked for
    with pytest.raises(ValueError, match="input channel 2 outside the stream's 2 channel"):
        InputCallback(RingBuffer(1024), StreamCounters(), channel=2).c_callback(2)


def test_the_compiled_output_callback_allocates_no_buffers() -> None:
    cb, ex, record = _voice_output(BLOCK)
    out, sink = np.zeros((BLOCK, 1), dtype=np.float32), np.zeros(BLOCK, dtype=np.float32)
    frames = [_frame(0.5, 60.0 + i % 3, 1.0, 1.0 + i // 7) for i in range(30)]
    state = {"i": 0}

    def one() -> None:
        state["i"] += 1
        ex.publish(frames[state["i"] % 30])
        cb(out, BLOCK, None, NO_STATUS)
        record.read_into(sink)

    # a longer warm-up: ctypes (the Python side of the call) fills its caches over the first few hundred
    kept, peak = _measure_allocations(one, warm_up=1000)
    assert kept < 1024 and peak < 2048, (kept, peak)


def test_the_compiled_callbacks_cannot_allocate_or_raise() -> None:
    """Everything PortAudio's thread runs is compiled without numba's runtime (no array can be created, no
    reference counted) and with numpy's error model (no exception, which would need the GIL to report)."""
    kernels = [getattr(rt_kernel, n) for n in ("now_ns", "hist_record", "count_status", "ring_write", "frame_read")]
    kernels += [rt_kernel.wake, rt_kernel.input_block, rt_output.apply_frame, rt_output.output_block]
    for kernel in kernels:
        options = kernel.targetoptions
        assert options.get("_nrt") is False and options.get("error_model") == "numpy", (kernel, options)
    for kernel in (k.set_target, k.set_note, k.note_on, k.gate, k.stream_block, k.render, k.snap_into):
        assert kernel.targetoptions.get("_nrt") is False, kernel
