"""Streaming descriptors for the live loop: one descriptor vector per audio block, no allocation per block.

Input: successive mono blocks (`np.ndarray`, any float dtype, `block_size` frames each; other
lengths are accepted too) at `sample_rate_hz` (the device's rate).
Output: `process(block)` -> `np.ndarray[K]` float32 in `DESCRIPTOR_NAMES` order, a buffer owned by the
analyser and overwritten on every call (copy it to keep it). `process_core(block)` + `complete()` is
`process(block)` in two steps: first everything but the `DEFERRABLE` descriptors (MFCC, chroma), then
those (the live worker sends its parameters in between when the model reads neither).

The analysis runs at the settings' analysis rate (`features.sample_rate_hz`), the rate at which corpus
files are analysed and the agent is trained: input at another rate is first resampled block by block
(`features.stream_resample`: scipy's `resample_poly` filter, 0.6 ms look-ahead at 48 kHz), so a 48 kHz
live input gives the descriptors its 16 kHz file would give, for any content (loudness and peak
included), at about half the cost of analysing at 48 kHz. Each call analyses the last `window`
frames at the analysis rate (the window of `features.dsp.plan_for`), with the same constants and
formulas as `features.batch`; at the analysis rate, fed blocks of `plan.hop` frames it reproduces
`describe_batch` frame by frame. Per block: three numba kernels (`features.stream_kernels`: the
frame, its FFTs through DUCC0 (`rocket-fft`; a batched forward pair and an inverse), the
descriptors) on buffers allocated once, in float64, with their arguments packed once (timing:
benchmarks/features.py, benchmarks/live.py).
"""

from __future__ import annotations

import numpy as np

from features import stream_kernels as kern
from features.config import FeatureSettings
from features.dsp import LOUDNESS_OFFSET_DB, MAX_ABS_SAMPLE, plan_for
from features.names import DESCRIPTOR_NAMES, GROUPS, N_MFCC
from features.stream_resample import StreamResampler

_LOUDNESS_GAIN = 10.0 ** (LOUDNESS_OFFSET_DB / 10.0)
_PAIR_AXES = np.array([1], dtype=np.int64)  # `kern.transforms`: the rows of the frame pair
_ROW_AXES = np.array([0], dtype=np.int64)
DEFERRABLE: tuple[str, ...] = GROUPS["mfcc"] + GROUPS["chroma"]  # what `process_core` leaves to `complete`


class StreamingDescriptors:
    """Per-block descriptors with fixed window and buffers allocated once."""

    names: tuple[str, ...] = DESCRIPTOR_NAMES
    deferrable: tuple[str, ...] = DEFERRABLE

    def __init__(self, settings: FeatureSettings, sample_rate_hz: int, block_size: int) -> None:
        if block_size <= 0:
            raise ValueError(f"block_size must be > 0 frames, got {block_size}")
        self.settings = settings
        self.sample_rate_hz = int(sample_rate_hz)
        self.block_size = int(block_size)
        self.analysis_rate_hz = int(settings.sample_rate_hz)
        plan = self.plan = plan_for(self.analysis_rate_hz, settings)
        self._resampler = (
            StreamResampler(self.sample_rate_hz, self.analysis_rate_hz, MAX_ABS_SAMPLE)
            if self.sample_rate_hz != self.analysis_rate_hz
            else None
        )
        n, nb, band = plan.window, plan.n_bins, plan.n_band
        self._ring = np.zeros(n)
        self._pos = 0
        self._frame = np.zeros(n)
        # YIN's mean-removed frame and its head (the first yin_width frames, the rest stays 0) as the two
        # rows of one array, so that one batched rfft transforms both (~40% faster than two calls)
        self._yin_pair = np.zeros((2, n))
        self._yin_x, self._yin_head = self._yin_pair[0], self._yin_pair[1]
        self._spec = np.zeros(nb, dtype=np.complex128)
        self._spec_pair = np.zeros((2, nb), dtype=np.complex128)
        self._corr = np.zeros(n)
        self._stats = np.zeros(4)  # mean square, peak, mean square without DC, mean
        self._power = np.zeros(nb)
        self._mag = np.zeros(band)
        self._mel_db = np.zeros(plan.mel.shape[0])
        self._cs = np.zeros(n + 1)
        self._cmnd = np.zeros(plan.tau_max + 1)
        self._kweight = np.ascontiguousarray(plan.kweight_ms)
        self._freqs_khz = np.ascontiguousarray(plan.freqs_hz / 1000.0)
        self._mel = np.ascontiguousarray(plan.mel)
        self._mel_bounds = np.ascontiguousarray(plan.mel_bounds)
        self._dct = np.ascontiguousarray(plan.dct[:N_MFCC])
        self._chroma = np.ascontiguousarray(plan.chroma)
        self._out64 = np.zeros(len(DESCRIPTOR_NAMES))
        self._prev64 = np.zeros(len(DESCRIPTOR_NAMES))
        self._blocks = 0
        self._extras_due = False  # `process_core` ran, `complete` not yet
        self._floor_power = float(plan.floor_power)
        self._n_band = int(plan.n_band)
        self._out = np.zeros(len(DESCRIPTOR_NAMES), dtype=np.float32)
        self._delta = np.zeros(len(DESCRIPTOR_NAMES), dtype=np.float32)
        self._yin_width = int(plan.yin_width)
        self._no_frames = np.zeros(0, dtype=np.float32)
        # every argument of `finish` is a constant or a buffer allocated once: pack them once
        self._finish_args = (
            self._spec,
            float(plan.spectrum_scale**2),
            self._kweight,
            self._stats,
            int(plan.n_band),
            float(plan.band_floor_amp**2),
            self._freqs_khz,
            float(plan.rolloff_0to1),
            self._mel,
            self._mel_bounds,
            self._dct,
            self._chroma,
            float(plan.floor_power),
            float(plan.floor_amp),
            _LOUDNESS_GAIN,
            self._corr,
            self._yin_x,
            int(plan.tau_min),
            int(plan.tau_max),
            self._yin_width,
            float(plan.pitch_threshold),
            float(plan.sample_rate_hz),
            self._power,
            self._mag,
            self._mel_db,
            self._cs,
            self._cmnd,
            self._out64,
        )
        # warm up here, not on the first live block: numba loads (or, on a fresh checkout, compiles) its kernels
        for dtype in (np.float32, np.float64):
            self.push(np.zeros(self.block_size, dtype=dtype))
            self.process(np.zeros(self.block_size, dtype=dtype))
        self.reset()

    def reset(self) -> None:
        """Forget the audio history (as after silence)."""
        self._ring.fill(0.0)
        self._pos = 0
        if self._resampler is not None:
            self._resampler.reset()
        self._blocks = 0
        self._extras_due = False
        self._out64.fill(0.0)
        self._out.fill(0.0)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Push one block and return the descriptors of the last window (float32 [K], reused buffer)."""
        return self._process(block, extras=True)

    def process_core(self, block: np.ndarray) -> np.ndarray:
        """`process` without the `DEFERRABLE` descriptors: their entries of the returned buffer still hold
        the previous window's values until `complete()`."""
        return self._process(block, extras=False)

    def _process(self, block: np.ndarray, *, extras: bool) -> np.ndarray:
        block = _checked(block)
        self.complete()  # a pending window's extras first: `delta` compares whole vectors
        np.copyto(self._prev64, self._out64)
        self._blocks += 1
        self._analyse(block, extras=extras)
        np.copyto(self._out, self._out64, casting="same_kind")
        self._extras_due = not extras
        return self._out

    def complete(self) -> np.ndarray:
        """Compute the `DEFERRABLE` descriptors of the window `process_core` analysed (nothing to do
        otherwise) and return the full vector (the buffer `process` returns)."""
        if self._extras_due:
            self._extras_due = False
            kern.finish_extras(self._power, self._mel, self._mel_bounds, self._dct, self._chroma,
                               self._floor_power, self._n_band, self._mel_db, self._out64)  # fmt: skip
            np.copyto(self._out, self._out64, casting="same_kind")
        return self._out

    def push(self, block: np.ndarray) -> None:
        """Take a block into the analysis window without analysing it: `push(a)` then `process(b)` gives
        exactly `process(a + b)` (the live worker pushes the blocks between two control ticks as they
        arrive, so that the tick block's analysis has only its own block to resample)."""
        block = _checked(block)
        if self._resampler is None:
            self._pos = kern.push_block(self._ring, self._pos, block, MAX_ABS_SAMPLE)
        else:
            self._pos = self._resampler.push(block, self._ring, self._pos)

    def warm(self) -> None:
        """Analyse the current window again, changing nothing (every buffer is recomputed to the value it
        holds): the live worker calls this just before a latency-critical block arrives, so that the block's
        analysis finds its code and buffers in the caches (on an idle core it can run ~2x slower cold)."""
        self._analyse(self._no_frames, extras=not self._extras_due)

    def _analyse(self, block: np.ndarray, *, extras: bool = True) -> None:
        """Push `block` (float32 or float64; may be empty) and compute the window's descriptors into `_out64`."""
        if self._resampler is None:
            self._pos = kern.push_and_prepare(
                self._ring, self._pos, block, MAX_ABS_SAMPLE, self._frame, self._yin_x, self._yin_head,
                self._yin_width, self._stats,
            )  # fmt: skip
        else:
            self._pos = self._resampler.push(block, self._ring, self._pos)
            kern.prepare_frame(
                self._ring, self._pos, self._frame, self._yin_x, self._yin_head, self._yin_width, self._stats
            )
        kern.transforms(self._yin_pair, self._spec_pair, self._spec, self._stats[3], self._corr, _PAIR_AXES, _ROW_AXES)
        kern.finish(*self._finish_args, extras)

    def delta(self) -> np.ndarray:
        """The last vector minus the one before (float32 [K], reused buffer; zeros after the first block),
        as `features.batch.deltas` frame to frame."""
        if self._blocks < 2:
            self._delta.fill(0.0)
        else:
            np.subtract(self._out64, self._prev64, out=self._delta, casting="same_kind")
        return self._delta


def _checked(block: np.ndarray) -> np.ndarray:
    """`block` as 1-D float32/float64 (other dtypes are converted: rare, allocates)."""
    if not isinstance(block, np.ndarray) or block.ndim != 1:
        raise ValueError(f"block must be a 1-D mono numpy array, got {getattr(block, 'shape', type(block))}")
    if block.dtype != np.float32 and block.dtype != np.float64:
        return block.astype(np.float64)
    return block
