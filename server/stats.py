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

_BIN_RATIO = 1.01
_MIN_US = 1.0
_N_BINS = int(math.ceil(math.log(1e7 / _MIN_US) / math.log(_BIN_RATIO))) + 2
_INV_LOG_RATIO = 1.0 / math.log(_BIN_RATIO)


class StatusFlags(Protocol):
    """What we read from `sounddevice.CallbackFlags` (a test double can stand in)."""

    input_overflow: bool
    input_underflow: bool
    output_overflow: bool
    output_underflow: bool


class TimingHistogram:
    """Durations in microseconds into log bins; exact count, sum and max."""

    def __init__(self) -> None:
        self._counts = np.zeros(_N_BINS, dtype=np.int64)
        self.count = 0
        self.total_us = 0.0
        self.max_us = 0.0

    def record(self, value_us: float) -> None:
        if value_us <= _MIN_US:
            i = 0
        else:
            i = min(_N_BINS - 1, int(math.log(value_us / _MIN_US) * _INV_LOG_RATIO) + 1)
        self._counts[i] += 1
        self.count += 1
        self.total_us += value_us
        if value_us > self.max_us:
            self.max_us = value_us

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100) in µs: the geometric middle of its bin (within 1%)."""
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(q / 100.0 * self.count))
        i = int(np.searchsorted(np.cumsum(self._counts), rank))
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
        self._counts[:] = 0
        self.count = 0
        self.total_us = 0.0
        self.max_us = 0.0


class StreamCounters:
    """Per-stream counters written by one audio callback (input or output)."""

    def __init__(self) -> None:
        self.callbacks = 0
        self.input_overflows = 0
        self.input_underflows = 0
        self.output_overflows = 0
        self.output_underflows = 0
        self.xrun_callbacks = 0  # callbacks that carried any of the four flags
        self.callback_us = TimingHistogram()

    def count_status(self, status: StatusFlags) -> None:
        """Count PortAudio's xrun flags (call only when `status` is truthy)."""
        if status.input_overflow or status.input_underflow or status.output_overflow or status.output_underflow:
            self.xrun_callbacks += 1
        if status.input_overflow:
            self.input_overflows += 1
        if status.input_underflow:
            self.input_underflows += 1
        if status.output_overflow:
            self.output_overflows += 1
        if status.output_underflow:
            self.output_underflows += 1

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
