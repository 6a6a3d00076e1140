"""The `features:` and `loss:` sections of environment_settings.yaml."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureSettings:
    sample_rate_hz: int = 16000  # analysis rate: files are resampled to it (corpus, training)
    window_length: int = 1024  # frames per analysis window at sample_rate_hz
    hop_length: int = 512  # frames between analysis windows
    n_mels: int = 64
    n_mfcc: int = 13
    pitch_fmin_hz: float = 50.0
    pitch_fmax_hz: float = 2000.0
    silence_db: float = -90.0  # floor for dB descriptors (silence gives this, never -inf)

    def __post_init__(self) -> None:
        if self.hop_length <= 0 or self.window_length < self.hop_length:
            raise ValueError(f"need 0 < hop_length <= window_length, got {self.hop_length}, {self.window_length}")


@dataclass(frozen=True)
class LossSettings:
    w_mr: float = 1.0  # multi-resolution STFT
    w_mfcc: float = 0.1
    w_cent: float = 1.0  # |d centroid|, in octaves
    w_loud: float = 0.05  # |d LUFS|, in dB
    w_dc: float = 10.0  # anti-cheat: DC penalty
    w_clip: float = 10.0  # anti-cheat: clipping penalty
    normalize_loudness: bool = False  # compare loudness-normalized audio
