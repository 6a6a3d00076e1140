"""Test signals shared by the features tests (deterministic, float64)."""

from __future__ import annotations

import numpy as np


def harmonic(f0_hz: float, seconds: float, sr: int, n_harmonics: int = 12, amp: float = 0.5) -> np.ndarray:
    """A band-limited sawtooth-like tone (1/k amplitudes, harmonics below Nyquist)."""
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    for k in range(1, n_harmonics + 1):
        if k * f0_hz < sr / 2 * 0.95:
            x += np.sin(2 * np.pi * k * f0_hz * t) / k
    return amp * x / np.max(np.abs(x))


def noise(seconds: float, sr: int, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    return amp * np.random.default_rng(seed).standard_normal(int(seconds * sr))


def phrase(sr: int, seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """A varied test phrase: three tones with attacks, a noise burst and a little background noise."""
    n = int(seconds * sr)
    x = np.zeros(n)
    third = n // 3
    for i, f0 in enumerate((196.0, 440.0, 311.1)):
        seg = harmonic(f0, third / sr, sr, amp=0.4 + 0.1 * i)
        seg = seg * np.minimum(1.0, np.arange(third) / (0.02 * sr))
        x[i * third : i * third + len(seg)] += seg
    burst = noise(0.1, sr, amp=0.2, seed=seed)
    x[n // 2 : n // 2 + len(burst)] += burst
    return x + noise(seconds, sr, amp=0.003, seed=seed + 1)[:n]


def phrase_pair(seconds: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The same band-limited phrase (content below 6 kHz) at 48 kHz and, by taking every third sample, 16 kHz."""
    from scipy.signal import butter, sosfilt

    sr = 48000
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = np.zeros(n)
    third = n // 3
    for i, f0 in enumerate((196.0, 440.0, 311.1)):
        seg = slice(i * third, (i + 1) * third)
        tone = sum(np.sin(2 * np.pi * k * f0 * t[seg]) / k for k in range(1, 40) if k * f0 < 6000)
        x[seg] = (0.4 + 0.1 * i) * tone / np.max(np.abs(tone)) * np.minimum(1.0, np.arange(third) / (0.02 * sr))
    rng = np.random.default_rng(seed)
    burst = np.zeros(n)
    burst[n // 2 : n // 2 + sr // 10] = 0.2 * rng.standard_normal(sr // 10)
    x += burst + 0.003 * rng.standard_normal(n)
    x = sosfilt(butter(10, 5000.0, fs=sr, output="sos"), x)  # band-limit everything, note edges included
    return x[::3].copy(), x
