"""The real `Hearing` of the matching agent: `features.batch` descriptors and `features.loss`.

Input: probe renders `[B, N]` (torch). Output: `Heard` (64-band log-mel in dB, MFCC, spectral
centroid in Hz per frame, integrated loudness in dB: the energy mean of the frames' K-weighted
momentary loudness), target caches for `features.loss.PerceptualLoss`, and the per-row perceptual
loss `[B]` against cached targets. One analysis pass per batch feeds all observation features.
"""

from __future__ import annotations

import math

import torch

from agents.match.probe import Heard, TargetCache
from features.batch import analyze_frames, log_mel_frames, loudness_group, mfcc_from_log_mel, spectral_shape
from settings.loader import Settings

_LN10_OVER_10 = math.log(10.0) / 10.0


def integrated_loudness_db(momentary_db: torch.Tensor) -> torch.Tensor:
    """[B, T] momentary loudness (dB) -> [B] energy mean over frames, in dB."""
    peak = momentary_db.amax(dim=1, keepdim=True)
    energy = torch.exp((momentary_db - peak) * _LN10_OVER_10).mean(dim=1)
    return peak.squeeze(1) + torch.log(energy) / _LN10_OVER_10


class FeaturesHearing:
    """`Hearing` built on the features package (the same math as corpus analysis and the live loop)."""

    def __init__(self, settings: Settings) -> None:
        from features.loss import PerceptualLoss

        self.sample_rate_hz = settings.synth.sample_rate_hz
        self.features = settings.features
        self.loss_module = PerceptualLoss(settings.loss, settings.features, sample_rate_hz=self.sample_rate_hz)

    def hear(self, audio: torch.Tensor) -> Heard:
        frames = analyze_frames(audio, self.sample_rate_hz, self.features)
        logmel = log_mel_frames(frames)
        return Heard(
            logmel_db=logmel,
            mfcc=mfcc_from_log_mel(logmel, frames.const, self.features.n_mfcc),
            centroid_hz=spectral_shape(frames)[..., 0],
            loudness_db=integrated_loudness_db(loudness_group(frames)[..., 0]),
        )

    def cache_targets(self, audio: torch.Tensor) -> TargetCache:
        return dict(self.loss_module.target_features(audio))

    def loss(self, audio: torch.Tensor, targets: TargetCache) -> torch.Tensor:
        return self.loss_module.from_target_features(audio, targets)
