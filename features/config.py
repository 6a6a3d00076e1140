"""The `features:` and `loss:` sections of environment_settings.yaml."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureSettings:
    sample_rate_hz: int = 16000  # analysis rate: files are resampled to it (corpus, training)
    window_length: int = 1024  # frames per analysis window at sample_rate_hz (scaled in time at other rates)
    hop_length: int = 512  # frames between analysis windows
    n_mels: int = 64
    n_mfcc: int = 13
    pitch_fmin_hz: float = 50.0
    pitch_fmax_hz: float = 2000.0
    silence_db: float = -90.0  # floor for dB descriptors (silence gives this, never -inf)
    max_freq_hz: float = 8000.0  # spectral descriptors see 0..max_freq_hz only, so 48 kHz and 16 kHz agree
    rolloff_percent: float = 95.0  # spectral rolloff: the frequency below which this % of the magnitude lies
    pitch_threshold: float = 0.1  # YIN absolute threshold on the normalized difference

    def __post_init__(self) -> None:
        if self.hop_length <= 0 or self.window_length < self.hop_length:
            raise ValueError(f"need 0 < hop_length <= window_length, got {self.hop_length}, {self.window_length}")
        if self.sample_rate_hz < 1000:
            raise ValueError(f"sample_rate_hz must be >= 1000, got {self.sample_rate_hz}")
        if not 0 < self.pitch_fmin_hz < self.pitch_fmax_hz:
            raise ValueError(f"need 0 < pitch_fmin_hz < pitch_fmax_hz, got {self.pitch_fmin_hz}, {self.pitch_fmax_hz}")
        if self.sample_rate_hz / self.pitch_fmin_hz > self.window_length / 2:
            needed = 2 * self.sample_rate_hz / self.pitch_fmin_hz
            raise ValueError(f"pitch_fmin_hz {self.pitch_fmin_hz} needs window_length >= {needed:.0f}")
        if not 0 < self.rolloff_percent <= 100:
            raise ValueError(f"rolloff_percent must be in (0, 100], got {self.rolloff_percent}")
        if self.max_freq_hz <= 0:
            raise ValueError(f"max_freq_hz must be > 0, got {self.max_freq_hz}")
        if not 1 <= self.n_mfcc <= self.n_mels:
            raise ValueError(f"need 1 <= n_mfcc <= n_mels, got {self.n_mfcc}, {self.n_mels}")


@dataclass(frozen=True)
class LossSettings:
    w_mr: float = 1.0  # multi-resolution STFT
    w_mfcc: float = 0.1
    w_cent: float = 1.0  # |d centroid|, in octaves
    w_loud: float = 0.05  # |d LUFS|, in dB
    w_dc: float = 10.0  # anti-cheat: DC penalty
    w_clip: float = 10.0  # anti-cheat: clipping penalty
    normalize_loudness: bool = False  # compare loudness-normalized audio
    fft_sizes: tuple[int, ...] = (2048, 1024, 512)  # MR-STFT resolutions (hop = fft_size // 4)
    clip_threshold: float = 0.999  # |sample| at or above this counts as clipped
