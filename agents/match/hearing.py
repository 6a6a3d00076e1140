"""The real `Hearing` of the matching agent: `features.batch` descriptors and `features.loss`.

Input: probe renders `[B, N]` (torch). Output: `Heard` (64-band log-mel in dB, MFCC, spectral
centroid in Hz per frame, clip loudness in LUFS), target caches (the `features.loss.TargetFeatures`
of `PerceptualLoss.prepare_target`, flattened to batch-first tensors so rows can be replaced per
episode), and the per-row perceptual loss `[B]` (`PerceptualLoss.compare(...).total`).
"""

from __future__ import annotations

import dataclasses

import torch

from agents.match.probe import Heard, TargetCache
from features.batch import (
    Frames,
    analyze_frames,
    band_magnitude,
    clip_loudness_frames,
    log_mel_frames,
    mfcc_from_log_mel,
)
from features.loss import PerceptualLoss, TargetFeatures
from settings.loader import Settings

_N_SAMPLES = "n_samples"


def centroid_hz(frames: Frames) -> torch.Tensor:
    """[B, T] spectral centroid in Hz: the centroid of `features.batch.spectral_shape` without the
    other six shape descriptors (skewness, kurtosis and rolloff cost 20x more and are not observed)."""
    mag = band_magnitude(frames)
    return (mag @ frames.const.freqs_khz) / mag.sum(-1) * 1000.0


def flatten_target(features: TargetFeatures) -> TargetCache:
    """TargetFeatures -> {name or name.i: Tensor[b, ...]} (the sample count as a [b] tensor)."""
    out: TargetCache = {}
    batch = int(features.mfcc.shape[0])
    for field in dataclasses.fields(features):
        value = getattr(features, field.name)
        if isinstance(value, tuple):
            for i, tensor in enumerate(value):
                out[f"{field.name}.{i}"] = tensor
        elif isinstance(value, torch.Tensor):
            out[field.name] = value
        else:
            out[field.name] = torch.full((batch,), int(value), dtype=torch.int64)
    return out


def unflatten_target(cache: TargetCache) -> TargetFeatures:
    kwargs: dict[str, object] = {}
    for field in dataclasses.fields(TargetFeatures):
        if field.name in cache:
            kwargs[field.name] = cache[field.name]
        else:
            count = sum(1 for key in cache if key.startswith(f"{field.name}."))
            kwargs[field.name] = tuple(cache[f"{field.name}.{i}"] for i in range(count))
    samples = cache[_N_SAMPLES]
    kwargs[_N_SAMPLES] = int(samples[0])
    return TargetFeatures(**kwargs)  # type: ignore[arg-type]


class FeaturesHearing:
    """`Hearing` built on the features package (the same math as corpus analysis and the live loop)."""

    def __init__(self, settings: Settings) -> None:
        self.sample_rate_hz = settings.synth.sample_rate_hz
        self.features = settings.features
        self.loss_module = PerceptualLoss(settings.loss, settings.features, sample_rate_hz=self.sample_rate_hz)

    def hear(self, audio: torch.Tensor) -> Heard:
        frames = analyze_frames(audio, self.sample_rate_hz, self.features)
        logmel = log_mel_frames(frames)
        return Heard(
            logmel_db=logmel,
            mfcc=mfcc_from_log_mel(logmel, frames.const, self.features.n_mfcc),
            centroid_hz=centroid_hz(frames),
            loudness_db=clip_loudness_frames(frames),
        )

    def cache_targets(self, audio: torch.Tensor) -> TargetCache:
        return flatten_target(self.loss_module.prepare_target(audio))

    def loss(self, audio: torch.Tensor, targets: TargetCache) -> torch.Tensor:
        return self.loss_module.compare(audio, unflatten_target(targets)).total
