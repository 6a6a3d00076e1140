"""Streaming descriptors for the live loop: one descriptor vector per audio block, no allocation per block.

Input: successive mono blocks (`np.ndarray`, any float dtype, `block_size` frames each; other
lengths are accepted too) at `sample_rate_hz`.
Output: `process(block)` -> `np.ndarray[K]` float32 in `DESCRIPTOR_NAMES` order, a buffer owned by the
analyser and overwritten on every call (copy it to keep it).

Each call analyses the last `window` frames heard (the window of `features.dsp.plan_for`, i.e. the
settings' window duration at this rate), with the same constants and formulas as `features.batch`;
fed blocks of `plan.hop` frames it reproduces `describe_batch` frame by frame. Numpy float64 on
preallocated buffers: per-block cost is a few dozen small vector ops (see benchmarks/features.py).
"""

from __future__ import annotations

import math

import numpy as np

from features.config import FeatureSettings
from features.dsp import LOUDNESS_OFFSET_DB, MAX_ABS_SAMPLE, plan_for
from features.names import DESCRIPTOR_NAMES, N_MFCC
from features.pitch import YinFrame

_LOUDNESS_GAIN = 10.0 ** (LOUDNESS_OFFSET_DB / 10.0)


class StreamingDescriptors:
    """Per-block descriptors with fixed window and buffers allocated once."""

    names: tuple[str, ...] = DESCRIPTOR_NAMES

    def __init__(self, settings: FeatureSettings, sample_rate_hz: int, block_size: int) -> None:
        if block_size <= 0:
            raise ValueError(f"block_size must be > 0 frames, got {block_size}")
        self.settings = settings
        self.sample_rate_hz = int(sample_rate_hz)
        self.block_size = int(block_size)
        plan = self.plan = plan_for(self.sample_rate_hz, settings)
        n, nb, band = plan.window, plan.n_bins, plan.n_band
        self._ring = np.zeros(n)
        self._pos = 0
        self._frame = np.zeros(n)
        self._tmp = np.zeros(n)
        self._spec = np.zeros(nb, dtype=np.complex128)
        self._power = np.zeros(nb)
        self._mag = np.zeros(band)
        self._band_tmp = np.zeros(band)
        self._dev = np.zeros(band)
        self._dev2 = np.zeros(band)
        self._cum = np.zeros(band)
        self._freqs_khz = plan.freqs_hz / 1000.0
        self._hann = plan.hann.copy()
        self._kweight = plan.kweight_ms * plan.spectrum_scale**2
        self._power_scale = plan.spectrum_scale**2
        self._mel = np.ascontiguousarray(plan.mel)
        self._mel_out = np.zeros(plan.mel.shape[0])
        self._dct = np.ascontiguousarray(plan.dct[:N_MFCC])
        self._chroma = np.ascontiguousarray(plan.chroma)
        self._chroma_out = np.zeros(12)
        self._yin = YinFrame(plan)
        self._out64 = np.zeros(len(DESCRIPTOR_NAMES))
        self._out = np.zeros(len(DESCRIPTOR_NAMES), dtype=np.float32)
        self._bin_khz = float(self._freqs_khz[1] - self._freqs_khz[0]) if band > 1 else 0.0

    def reset(self) -> None:
        """Forget the audio history (as after silence)."""
        self._ring.fill(0.0)
        self._pos = 0

    def process(self, block: np.ndarray) -> np.ndarray:
        """Push one block and return the descriptors of the last window (float32 [K], reused buffer)."""
        self._push(block)
        self._describe()
        np.copyto(self._out, self._out64, casting="same_kind")
        return self._out

    def _push(self, block: np.ndarray) -> None:
        n = self.plan.window
        length = block.shape[0] if block.ndim == 1 else -1
        if length < 0:
            raise ValueError(f"block must be 1-D mono, got shape {block.shape}")
        if length >= n:
            self._ring[:] = block[length - n :]
            self._pos = 0
            self._sanitize(self._ring)
        else:
            first = min(length, n - self._pos)
            seg = self._ring[self._pos : self._pos + first]
            seg[:] = block[:first]
            self._sanitize(seg)
            if first < length:
                seg = self._ring[: length - first]
                seg[:] = block[first:]
                self._sanitize(seg)
            self._pos = (self._pos + length) % n
        p = self._pos
        self._frame[: n - p] = self._ring[p:]
        self._frame[n - p :] = self._ring[:p]

    @staticmethod
    def _sanitize(seg: np.ndarray) -> None:
        if not math.isfinite(float(np.dot(seg, seg))):  # BLAS: no FP warnings; NaN / Inf / overflow -> not finite
            np.nan_to_num(seg, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)  # rare: allocates
        np.clip(seg, -MAX_ABS_SAMPLE, MAX_ABS_SAMPLE, out=seg)

    def _describe(self) -> None:
        p, out, frame, tmp = self.plan, self._out64, self._frame, self._tmp
        # loudness group
        np.multiply(frame, self._hann, out=tmp)
        np.fft.rfft(tmp, out=self._spec)
        np.abs(self._spec, out=self._power)
        np.multiply(self._power, self._power, out=self._power)  # unscaled |X|^2
        kms = float(np.dot(self._kweight, self._power))
        self._power *= self._power_scale
        out[0] = 10.0 * math.log10(kms * _LOUDNESS_GAIN + p.floor_power)
        out[1] = 10.0 * math.log10(float(np.dot(frame, frame)) / p.window + p.floor_power)
        np.abs(frame, out=tmp)
        out[2] = 20.0 * math.log10(float(tmp.max()) + p.floor_amp)
        band = self._power[: p.n_band]
        self._spectral_shape(band)
        # mfcc
        mel = self._mel_out
        np.matmul(self._mel, band, out=mel)
        mel += p.floor_power
        np.log10(mel, out=mel)
        mel *= 10.0
        np.matmul(self._dct, mel, out=out[10 : 10 + N_MFCC])
        # chroma
        chroma = self._chroma_out
        np.matmul(self._chroma, band, out=chroma)
        chroma /= float(chroma.max()) + p.floor_power
        out[10 + N_MFCC : 22 + N_MFCC] = chroma
        out[22 + N_MFCC], out[23 + N_MFCC] = self._yin.process(frame)

    def _spectral_shape(self, band_power: np.ndarray) -> None:
        p, out, mag, f = self.plan, self._out64, self._mag, self._freqs_khz
        dev, dev2, tmp = self._dev, self._dev2, self._band_tmp
        np.add(band_power, p.band_floor_amp**2, out=mag)
        np.sqrt(mag, out=mag)
        total = float(mag.sum())
        centroid = float(np.dot(mag, f)) / total
        np.subtract(f, centroid, out=dev)
        np.multiply(dev, dev, out=dev2)
        var = float(np.dot(mag, dev2)) / total
        spread = math.sqrt(var)
        np.multiply(dev2, dev, out=tmp)
        skew = float(np.dot(mag, tmp)) / total / (var * spread)
        np.multiply(dev2, dev2, out=tmp)
        kurt = float(np.dot(mag, tmp)) / total / (var * var)
        np.cumsum(mag, out=self._cum)
        target = p.rolloff_0to1 * total
        i = min(int(np.searchsorted(self._cum, target)), mag.shape[0] - 1)
        rolloff = f[i] if i == 0 else f[i] - self._bin_khz * (self._cum[i] - target) / mag[i]
        mean = total / mag.shape[0]
        np.log(mag, out=tmp)
        flatness = 20.0 / math.log(10.0) * (float(tmp.mean()) - math.log(mean))
        crest = 20.0 * math.log10(float(mag.max()) / mean)
        out[3] = centroid * 1000.0
        out[4] = spread * 1000.0
        out[5] = skew
        out[6] = kurt
        out[7] = rolloff * 1000.0
        out[8] = flatness
        out[9] = crest
