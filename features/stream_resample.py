"""A streaming rational resampler: live audio at the device rate -> samples at the analysis rate.

Input: successive mono blocks (float32/float64, any length, 0 included) at `from_hz`.
Output: the resampled samples, written one by one into a caller's ring buffer (the streaming
descriptors' analysis window) by `features.stream_kernels.resample_into_ring` (in that file so that
it shares the sample repair of `push_block`); nothing is allocated per block.

The filter and the alignment are scipy's `resample_poly` (the file face's resampler when libsoxr is
absent): the rates reduced by their gcd to up / down, a Kaiser-windowed sinc (beta 5) of
2 * 10 * max(up, down) + 1 taps cut at the lower Nyquist, zero-phase (output m is input time
m * down / up). Fed any split of a signal, it gives `resample_poly`'s samples (tested); output m
leaves once its last input sample has arrived, i.e. 10 * max(up, down) / up input frames late
(0.6 ms at 48 -> 16 kHz). Input samples are repaired as `push_block` repairs them (NaN -> 0,
+-Inf -> +-1, clamp to +-max_abs), outputs are clamped to +-max_abs.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import firwin

from features.stream_kernels import resample_into_ring


def reduced_ratio(from_hz: int, to_hz: int) -> tuple[int, int]:
    """(up, down) with to_hz / from_hz = up / down in lowest terms."""
    if from_hz <= 0 or to_hz <= 0:
        raise ValueError(f"sample rates must be > 0 Hz, got {from_hz} -> {to_hz}")
    g = math.gcd(from_hz, to_hz)
    return to_hz // g, from_hz // g


def polyphase_taps(up: int, down: int) -> tuple[np.ndarray, int]:
    """`resample_poly`'s filter as a [up, P] table of taps in time order per phase (oldest input first)
    and its half length (the zero-phase delay in upsampled samples)."""
    max_rate = max(up, down)
    half_len = 10 * max_rate
    h = firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * up
    per_phase = -(-h.size // up)
    padded = np.zeros(per_phase * up)
    padded[: h.size] = h
    # phase p uses h[p + j * up] on input x[newest - j]; stored reversed so that the dot product runs
    # over the history oldest first
    table = padded.reshape(per_phase, up).T[:, ::-1]
    return np.ascontiguousarray(table), half_len


class StreamResampler:
    """`from_hz` -> `to_hz`, block by block, into a caller's ring (state and taps allocated once)."""

    def __init__(self, from_hz: int, to_hz: int, max_abs: float) -> None:
        self.from_hz, self.to_hz = int(from_hz), int(to_hz)
        self.up, self.down = reduced_ratio(self.from_hz, self.to_hz)
        if self.up == self.down:
            raise ValueError(f"nothing to resample: both rates are {self.from_hz} Hz")
        self.max_abs = float(max_abs)
        self.taps, self.half_len = polyphase_taps(self.up, self.down)
        self._history = np.zeros(2 * self.taps.shape[1])
        self._counters = np.zeros(3, dtype=np.int64)
        self.reset()

    @property
    def delay_s(self) -> float:
        """How long after its input instant an output sample is written (the filter's look-ahead)."""
        return self.half_len / self.up / self.from_hz

    def reset(self) -> None:
        """Forget the input history (zeros before the next sample, as at the start of a signal)."""
        self._history.fill(0.0)
        self._counters[:] = (0, 0, self.half_len)

    def push(self, block: np.ndarray, ring: np.ndarray, ring_pos: int) -> int:
        """Resample `block` (1-D float32/float64) into `ring` from `ring_pos`; returns the new position."""
        return int(
            resample_into_ring(block, self.max_abs, self.taps, self.down, self._history, self._counters, ring, ring_pos)
        )
