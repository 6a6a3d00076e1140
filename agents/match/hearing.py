"""The real `Hearing` of the matching agent: `features.batch` descriptors and `features.loss`.

Input: probe renders `[B, N]` (torch). Output: `Heard` (64-band log-mel in dB, MFCC, spectral
centroid in Hz per frame, clip loudness in LUFS), target caches (the `features.loss.TargetFeatures`
of `PerceptualLoss.prepare_target`, flattened to batch-first tensors so rows can be replaced per
episode), and the per-row perceptual loss `[B]` (`PerceptualLoss.compare(...).total`).

`hear_and_loss` does both in one pass: the batch is cut into row blocks of `BLOCK_FRAMES` analysis
frames (32 rows of a 0.5 s probe: two blocks for a batch of 64, one per worker thread; the loss's
kernels work row by row in cache, so larger blocks only save per-call costs: 1.14x faster than
blocks of 16 rows, same-process A/B), each block's analysis (`PerceptualLoss.analyze`: the analysis frames,
which at the defaults are every other frame of the loss's 1024-point STFT, their mel band power,
loudness and centroids) serves the observation and the loss, and the blocks can run on several
Python threads. `hear_targets` likewise gives `cache_targets` and `hear` (episode resets). The values
are exactly those of `hear`, `loss` and `cache_targets` (which run the same blocks), whatever the
thread count: the blocks do not depend on it.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from agents.match.probe import Heard, TargetCache
from agents.match.threads import map_blocks
from features.batch import Frames, band_magnitude, mfcc_from_log_mel, n_frames, row_chunks
from features.dsp import plan_for
from features.loss import PerceptualLoss, RenderAnalysis, TargetFeatures
from settings.loader import Settings

_N_SAMPLES = "n_samples"
BLOCK_FRAMES = 512  # analysis frames per row block (`features.batch.row_chunks`)
_DB = 10.0 / math.log(10.0)  # 10 log10(x) = _DB * ln(x), as features.batch.log_mel_frames


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

    def hear(self, audio: torch.Tensor, *, threads: int = 1) -> Heard:
        return self._run(audio, None, threads)[0]

    def cache_targets(self, audio: torch.Tensor, *, threads: int = 1) -> TargetCache:
        return self.hear_targets(audio, threads=threads)[0]

    def hear_targets(self, audio: torch.Tensor, *, threads: int = 1) -> tuple[TargetCache, Heard]:
        """(`cache_targets(audio)`, `hear(audio)`), sharing each row block's analysis (episode resets)."""
        audio, blocks = self._blocks(audio)

        def block(rows: slice) -> tuple[TargetCache, Heard]:
            analysis = self.loss_module.analyze(audio[rows])
            target = self.loss_module.prepare_target(audio[rows], analysis=analysis)
            return flatten_target(target), self._heard(analysis)

        parts = map_blocks(block, blocks, threads)
        cache = {key: torch.cat([part[0][key] for part in parts]) for key in parts[0][0]}
        return cache, _cat_heard([heard for _, heard in parts])

    def loss(self, audio: torch.Tensor, targets: TargetCache) -> torch.Tensor:
        """Per-row loss, differentiable when the audio requires grad; the blocks of `hear_and_loss`."""
        audio, blocks = self._blocks(audio)
        parts = [self.loss_module.compare(audio[rows], _target_rows(targets, rows)).total for rows in blocks]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def hear_and_loss(
        self, audio: torch.Tensor, targets: TargetCache, *, threads: int = 1
    ) -> tuple[Heard, torch.Tensor]:
        """(`hear(audio)`, `loss(audio, targets)`), sharing each row block's analysis."""
        heard, loss = self._run(audio, targets, threads)
        assert loss is not None  # a target was given
        return heard, loss

    def _blocks(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[slice]]:
        """`[B, N]` audio and its row blocks of `BLOCK_FRAMES` frames (whatever the thread count)."""
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        if audio.dim() != 2:
            raise ValueError(f"audio must have shape [B, N] or [N], got {tuple(audio.shape)}")
        frames_per_row = n_frames(audio.shape[-1], plan_for(self.sample_rate_hz, self.features))
        return audio, row_chunks(audio.shape[0], frames_per_row, BLOCK_FRAMES)

    def _heard(self, analysis: RenderAnalysis) -> Heard:
        fr = analysis.frames
        logmel = _DB * torch.log(analysis.mel_power + fr.plan.floor_power)  # features.batch.log_mel_frames
        return Heard(
            logmel_db=logmel,
            mfcc=mfcc_from_log_mel(logmel, fr.const, self.features.n_mfcc),
            centroid_hz=centroid_hz(fr) if analysis.centroid_hz is None else analysis.centroid_hz,
            loudness_db=analysis.loudness_lufs,
        )

    def _run(self, audio: torch.Tensor, targets: TargetCache | None, threads: int) -> tuple[Heard, torch.Tensor | None]:
        audio, blocks = self._blocks(audio)

        def block(rows: slice) -> tuple[Heard, torch.Tensor | None]:
            analysis = self.loss_module.analyze(audio[rows])
            heard = self._heard(analysis)
            if targets is None:
                return heard, None
            return heard, self.loss_module.compare(audio[rows], _target_rows(targets, rows), analysis=analysis).total

        parts = map_blocks(block, blocks, threads)
        if len(parts) == 1:
            return parts[0]
        loss = None if targets is None else torch.cat([part for _, part in parts])  # type: ignore[misc]
        return _cat_heard([heard for heard, _ in parts]), loss


def _target_rows(targets: TargetCache, rows: slice) -> TargetFeatures:
    """The cached target features of `rows` (all of a single target broadcast over the batch)."""
    if int(targets[_N_SAMPLES].shape[0]) == 1:
        return unflatten_target(targets)
    return unflatten_target({key: value[rows] for key, value in targets.items()})


def _cat_heard(parts: list[Heard]) -> Heard:
    if len(parts) == 1:
        return parts[0]
    return Heard(*(torch.cat(column) for column in zip(*(_fields(h) for h in parts), strict=True)))


def _fields(heard: Heard) -> tuple[torch.Tensor, ...]:
    return (heard.logmel_db, heard.mfcc, heard.centroid_hz, heard.loudness_db)
