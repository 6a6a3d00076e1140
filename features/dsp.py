"""Shared analysis constants: one plan per (sample rate, settings), used by all three faces.

Input: a sample rate and `FeatureSettings`.
Output: an `AnalysisPlan` (numpy float64 arrays): frame geometry, Hann window, bin frequencies,
mel / DCT / chroma matrices, the BS.1770 K-weighting power response, YIN lags.

Frames: window and hop are scaled IN TIME from the analysis rate (1024 / 512 frames at 16 kHz are
64 / 32 ms, i.e. 3072 / 1536 frames at 48 kHz), and spectra are divided by the window sum, so the
same sound gives the same descriptor values at any rate. Frame `i` covers the `window` samples that
end at `(i + 1) * hop` (zero history before the start), the same window a streaming analyser sees
when block `i` arrives.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from features.config import FeatureSettings
from features.names import N_MFCC

LOUDNESS_OFFSET_DB = -0.691  # BS.1770: LUFS = -0.691 + 10 log10(K-weighted mean square)
MAX_ABS_SAMPLE = 1.0e3  # inputs are clamped here (and NaN -> 0, +-Inf -> +-1) before analysis


@dataclass(frozen=True, eq=False)
class AnalysisPlan:
    sample_rate_hz: int
    window: int  # frames per analysis window at this rate
    hop: int  # frames between windows at this rate
    n_bins: int  # rfft bins (window // 2 + 1)
    n_band: int  # bins 0..n_band-1 lie at or below max_freq_hz: spectral shape, mel and chroma use these
    hann: np.ndarray  # [window] periodic Hann
    spectrum_scale: float  # 1 / sum(hann): a full-scale sine peaks at 0.5 in the magnitude spectrum
    power_to_mean_square: np.ndarray  # [n_bins]: mean square of the frame = this . |S|^2 (Parseval)
    kweight_ms: np.ndarray  # [n_bins]: K-weighted mean square = this . |S|^2
    freqs_hz: np.ndarray  # [n_band] bin centre frequencies
    mel: np.ndarray  # [n_mels, n_band] triangular filters (Slaney mel scale, peak 1)
    mel_bounds: np.ndarray  # [n_mels, 2] int64: each filter's nonzero bins are [lo, hi)
    dct: np.ndarray  # [n_mels, n_mels] orthonormal DCT-II, rows = coefficients
    chroma: np.ndarray  # [12, n_band] pitch-class filters, row 0 = A
    floor_power: float  # 10 ** (silence_db / 10)
    floor_amp: float  # 10 ** (silence_db / 20)
    band_floor_amp: float  # floor_amp / n_band: per-bin floor of the spectral-shape magnitudes (silence -> flat)
    silence_db: float
    rolloff_0to1: float
    tau_min: int  # YIN lags, in frames, for pitch_fmax_hz .. pitch_fmin_hz
    tau_max: int
    pitch_threshold: float

    @property
    def yin_width(self) -> int:
        """Frames in the YIN integration window (the frame minus the longest lag)."""
        return self.window - self.tau_max


def scaled_length(frames_at_analysis_rate: int, sample_rate_hz: int, analysis_rate_hz: int) -> int:
    """The same duration in frames at another rate (at least 1)."""
    return max(1, int(round(frames_at_analysis_rate * sample_rate_hz / analysis_rate_hz)))


def plan_for(sample_rate_hz: int, settings: FeatureSettings) -> AnalysisPlan:
    """The analysis plan for one rate (cached: plans are immutable and shared)."""
    if sample_rate_hz < 1000:
        raise ValueError(f"sample_rate_hz must be >= 1000, got {sample_rate_hz}")
    return _plan(int(sample_rate_hz), settings)


@functools.lru_cache(maxsize=32)
def _plan(sr: int, s: FeatureSettings) -> AnalysisPlan:
    window = scaled_length(s.window_length, sr, s.sample_rate_hz)
    hop = scaled_length(s.hop_length, sr, s.sample_rate_hz)
    n_bins = window // 2 + 1
    all_freqs = np.arange(n_bins) * sr / window
    max_freq = min(s.max_freq_hz, sr / 2)
    n_band = int(np.searchsorted(all_freqs, max_freq + 1e-6, side="right"))
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)
    scale = 1.0 / hann.sum()
    # Parseval for an rfft: sum(x^2 w^2) = (|X_0|^2 + 2 sum |X_k|^2 + |X_nyq|^2) / window
    double = np.full(n_bins, 2.0)
    double[0] = 1.0
    if window % 2 == 0:
        double[-1] = 1.0
    to_ms = double * hann.sum() ** 2 / (window * np.sum(hann**2))
    freqs = all_freqs[:n_band]
    mel = mel_filters(freqs, s.n_mels, 0.0, max_freq)
    if s.n_mels < N_MFCC:
        raise ValueError(f"n_mels must be >= {N_MFCC} (the MFCC descriptors), got {s.n_mels}")
    return AnalysisPlan(
        sample_rate_hz=sr,
        window=window,
        hop=hop,
        n_bins=n_bins,
        n_band=n_band,
        hann=hann,
        spectrum_scale=scale,
        power_to_mean_square=to_ms,
        kweight_ms=to_ms * kweighting_power(all_freqs, sr),
        freqs_hz=freqs,
        mel=mel,
        mel_bounds=nonzero_bounds(mel),
        dct=dct_matrix(s.n_mels),
        chroma=chroma_filters(freqs),
        floor_power=10.0 ** (s.silence_db / 10.0),
        floor_amp=10.0 ** (s.silence_db / 20.0),
        band_floor_amp=10.0 ** (s.silence_db / 20.0) / max(1, n_band),
        silence_db=s.silence_db,
        rolloff_0to1=s.rolloff_percent / 100.0,
        tau_min=max(2, int(math.floor(sr / s.pitch_fmax_hz))),
        tau_max=min(int(math.ceil(sr / s.pitch_fmin_hz)), window // 2),
        pitch_threshold=s.pitch_threshold,
    )


def hz_to_mel(f_hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa's default."""
    f = np.asarray(f_hz, dtype=np.float64)
    lin = f / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log_part, lin)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


def mel_filters(freqs_hz: np.ndarray, n_mels: int, fmin_hz: float, fmax_hz: float) -> np.ndarray:
    """Triangular filters with peak 1, centres equally spaced in mel between fmin and fmax."""
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin_hz), hz_to_mel(fmax_hz), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs_hz[None, :] - lower) / (centre - lower)
    falling = (upper - freqs_hz[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def nonzero_bounds(matrix: np.ndarray) -> np.ndarray:
    """`[rows, 2]`: for each row, the half-open column range holding its nonzero entries (empty: [0, 0))."""
    bounds = np.zeros((matrix.shape[0], 2), dtype=np.int64)
    for row, values in enumerate(matrix):
        nonzero = np.flatnonzero(values)
        if nonzero.size:
            bounds[row] = (nonzero[0], nonzero[-1] + 1)
    return bounds


def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II: `coeffs = dct @ x` (as scipy.fft.dct(norm='ortho'))."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * k * (2 * i + 1) / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def chroma_filters(freqs_hz: np.ndarray) -> np.ndarray:
    """Pitch-class filters (Ellis' chroma bank, as librosa's with tuning 0): rows A, A#, ..., G#.

    Each bin is a Gaussian bump around its pitch class (width one bin spacing in semitones, at
    least one semitone), columns normalized to unit L2, weighted by a Gaussian over octaves
    centred on octave 5 (A4..A5) with a 2-octave width.
    """
    n_chroma = 12
    semis = np.empty_like(freqs_hz)
    semis[1:] = n_chroma * np.log2(freqs_hz[1:] / (440.0 / 16))
    bin_hz = freqs_hz[1] - freqs_hz[0]
    semis[0] = n_chroma * np.log2(bin_hz / (440.0 / 16)) - 1.5 * n_chroma  # DC: 1.5 octaves below bin 1
    widths = np.maximum(np.diff(semis, append=semis[-1] + 1.0), 1.0)  # in semitones, at least one
    dist = semis[None, :] - np.arange(n_chroma)[:, None]
    dist = np.remainder(dist + n_chroma / 2 + 10 * n_chroma, n_chroma) - n_chroma / 2
    weights = np.exp(-0.5 * (2 * dist / widths[None, :]) ** 2)
    weights /= np.maximum(np.linalg.norm(weights, axis=0, keepdims=True), 1e-12)
    octave_weight = np.exp(-0.5 * ((semis / n_chroma - 5.0) / 2.0) ** 2)
    return weights * octave_weight[None, :]


def kweighting_biquads(sample_rate_hz: float) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """BS.1770 K-weighting (high shelf +4 dB at 1.5 kHz, then high-pass at 38 Hz) at any rate.

    The two stages are designed per rate with the audio-EQ-cookbook formulas, as pyloudnorm does;
    at 48 kHz they are within 1e-4 of the coefficients printed in the standard.
    """
    stages = []
    for kind, gain_db, q, fc in (("shelf", 4.0, 1 / np.sqrt(2), 1500.0), ("highpass", 0.0, 0.5, 38.0)):
        a_gain = 10 ** (gain_db / 40.0)
        w0 = 2 * np.pi * fc / sample_rate_hz
        alpha = np.sin(w0) / (2 * q)
        cw = np.cos(w0)
        if kind == "shelf":
            sa = 2 * np.sqrt(a_gain) * alpha
            b = np.array(
                [
                    a_gain * ((a_gain + 1) + (a_gain - 1) * cw + sa),
                    -2 * a_gain * ((a_gain - 1) + (a_gain + 1) * cw),
                    a_gain * ((a_gain + 1) + (a_gain - 1) * cw - sa),
                ]
            )
            a = np.array(
                [
                    (a_gain + 1) - (a_gain - 1) * cw + sa,
                    2 * ((a_gain - 1) - (a_gain + 1) * cw),
                    (a_gain + 1) - (a_gain - 1) * cw - sa,
                ]
            )
        else:
            b = np.array([(1 + cw) / 2, -(1 + cw), (1 + cw) / 2])
            a = np.array([1 + alpha, -2 * cw, 1 - alpha])
        stages.append((b / a[0], a / a[0]))
    return tuple(stages)


def kweighting_power(freqs_hz: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    """|H_K(f)|^2 of the two K-weighting stages at the given frequencies."""
    z = np.exp(-1j * 2 * np.pi * np.asarray(freqs_hz) / sample_rate_hz)
    response = np.ones_like(z)
    for b, a in kweighting_biquads(sample_rate_hz):
        response *= (b[0] + b[1] * z + b[2] * z**2) / (a[0] + a[1] * z + a[2] * z**2)
    return np.abs(response) ** 2
