"""Counters and timing for the live loop: what `--stats-json` and `/server/stats` report.

Input: events from the callbacks (blocks, stream status flags) and from the worker (per-block
processing time in microseconds, control ticks, OSC sends).
Output: `LiveStats.to_dict()` with the SPEC keys `sample_rate`, `block_size`, `blocks`,
`control_ticks`, `xruns`, `block_us: {p50, p99, max}`, `osc_sent`, `osc_rejected`, plus more.

`TimingHistogram` is preallocated (log-spaced bins, 1% wide, 1 µs .. 10 s): recording a value
is a few integer operations, so it is safe to use in a callback; percentiles come back within 1%.
Each counter has a single writer (one callback or the worker), so no lock is needed.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from server import rt_kernel as rt

_BIN_RATIO = rt.H_BIN_RATIO
_MIN_US = rt.H_MIN_US


class StatusFlags(Protocol):
    """What we read from `sounddevice.CallbackFlags` (a test double can stand in)."""

    input_overflow: bool
    input_underflow: bool
    output_overflow: bool
    output_underflow: bool


class TimingHistogram:
    """Durations in microseconds into log bins; exact count, sum and max. The arrays are shared with the
    compiled callbacks, which record into them (`server.rt_kernel.hist_record`, as `record` does)."""

    def __init__(self) -> None:
        self.counts = np.zeros(rt.H_N_BINS, dtype=np.int64)
        self.acc = np.zeros(3, dtype=np.float64)  # [count, total µs, max µs]

    def record(self, value_us: float) -> None:
        rt.hist_record(self.counts, self.acc, float(value_us))

    @property
    def count(self) -> int:
        return int(self.acc[rt.H_COUNT])

    @property
    def total_us(self) -> float:
        return float(self.acc[rt.H_TOTAL])

    @property
    def max_us(self) -> float:
        return float(self.acc[rt.H_MAX])

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100) in µs: the geometric middle of its bin (within 1%)."""
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(q / 100.0 * self.count))
        i = int(np.searchsorted(np.cumsum(self.counts), rank))
        if i == 0:
            return _MIN_US
        low = _MIN_US * _BIN_RATIO ** (i - 1)
        return min(self.max_us, low * math.sqrt(_BIN_RATIO))

    def summary(self) -> dict[str, float]:
        """`{"p50", "p99", "max", "mean", "count"}` in µs (rounded to 0.1 µs)."""
        mean = self.total_us / self.count if self.count else 0.0
        return {
            "p50": round(self.percentile(50), 1),
            "p99": round(self.percentile(99), 1),
            "max": round(self.max_us, 1),
            "mean": round(mean, 1),
            "count": self.count,
        }

    def reset(self) -> None:
        self.counts[:] = 0
        self.acc[:] = 0.0


class StreamCounters:
    """Per-stream counters written by one audio callback (input or output), in an int64 array that the
    compiled callbacks update (`server.rt_kernel`, indices `C_*`)."""

    def __init__(self) -> None:
        self.values = np.zeros(rt.N_COUNTERS, dtype=np.int64)
        self.callback_us = TimingHistogram()

    def count_status(self, status: StatusFlags) -> None:
        """Count PortAudio's xrun flags (call only when `status` is truthy)."""
        rt.count_status(self.values, rt.status_bits(status))

    callbacks = property(lambda self: int(self.values[rt.C_CALLBACKS]))
    xrun_callbacks = property(lambda self: int(self.values[rt.C_XRUN_CALLBACKS]), doc="callbacks with any xrun flag")
    input_overflows = property(lambda self: int(self.values[rt.C_IN_OVER]))
    input_underflows = property(lambda self: int(self.values[rt.C_IN_UNDER]))
    output_overflows = property(lambda self: int(self.values[rt.C_OUT_OVER]))
    output_underflows = property(lambda self: int(self.values[rt.C_OUT_UNDER]))

    @property
    def last_call_ns(self) -> int:
        """`rt_kernel.monotonic_ns()` at the newest callback (the device supervisor watches it)."""
        return int(self.values[rt.C_LAST_NS])

    @last_call_ns.setter
    def last_call_ns(self, value_ns: int) -> None:
        self.values[rt.C_LAST_NS] = value_ns

    @property
    def thread(self) -> int:
        """The pthread id of the newest compiled callback (0: none yet, or a Python callback)."""
        return int(self.values[rt.C_THREAD])

    @property
    def xruns(self) -> int:
        """Callbacks flagged with an xrun (PortAudio-JACK sets input overflow and output underflow together)."""
        return self.xrun_callbacks

    def to_dict(self) -> dict[str, Any]:
        return {
            "callbacks": self.callbacks,
            "xrun_callbacks": self.xrun_callbacks,
            "input_overflows": self.input_overflows,
            "input_underflows": self.input_underflows,
            "output_overflows": self.output_overflows,
            "output_underflows": self.output_underflows,
            "callback_us": self.callback_us.summary(),
        }


class LiveStats:
    """Everything the server counts; `to_dict` gives the SPEC's stats JSON (and more)."""

    def __init__(self, sample_rate_hz: int, block_size: int) -> None:
        self.sample_rate_hz = int(sample_rate_hz)
        self.block_size = int(block_size)
        self.input = StreamCounters()
        self.output = StreamCounters()
        self.block_us = TimingHistogram()  # worker: descriptors -> observation -> policy -> OSC, per block
        self.tick_block_us = TimingHistogram()  # ... the blocks that ran the policy (input analysis + tick)
        self.block_cpu_us = TimingHistogram()  # ... the worker thread's CPU time per block (no waits, no preemption)
        self.blocks = 0  # audio blocks the worker processed
        self.control_ticks = 0  # policy evaluations (or frames published while paused/held)
        self.external_feature_frames = 0  # `--input osc`: descriptor frames processed (worker)
        self.external_frames_received = 0  # ... and received (OSC thread); the worker plays the latest
        self.ring_overruns = 0  # input blocks dropped because the worker fell behind (copied from the ring)
        self.device_errors = 0  # stream open/run failures (each reported once per outage)
        self.device_restarts = 0
        self.models_loaded = 0
        self.wall_s = 0.0

    @property
    def xruns(self) -> int:
        return self.input.xruns + self.output.xruns + self.ring_overruns

    def to_dict(self, osc: dict[str, Any] | None = None) -> dict[str, Any]:
        """The stats JSON. `osc` adds `osc_sent`, `osc_rejected` and friends (0 when OSC is off)."""
        osc = dict(osc or {})
        timing = self.block_us.summary()
        out: dict[str, Any] = {
            "sample_rate": self.sample_rate_hz,
            "block_size": self.block_size,
            "blocks": self.blocks,
            "control_ticks": self.control_ticks,
            "xruns": self.xruns,
            "block_us": {"p50": timing["p50"], "p99": timing["p99"], "max": timing["max"], "mean": timing["mean"]},
            "tick_block_us": _brief(self.tick_block_us),
            "block_cpu_us": _brief(self.block_cpu_us),
            "osc_sent": int(osc.pop("osc_sent", 0)),
            "osc_rejected": int(osc.pop("osc_rejected", 0)),
            "ring_overruns": self.ring_overruns,
            "external_feature_frames": self.external_feature_frames,
            "external_frames_received": self.external_frames_received,
            "device_errors": self.device_errors,
            "device_restarts": self.device_restarts,
            "models_loaded": self.models_loaded,
            "wall_s": round(self.wall_s, 3),
            "input_stream": self.input.to_dict(),
            "output_stream": self.output.to_dict(),
        }
        out.update(osc)
        return out


def _brief(histogram: TimingHistogram) -> dict[str, float]:
    summary = histogram.summary()
    return {k: summary[k] for k in ("p50", "p99", "max", "mean")}
