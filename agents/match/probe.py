"""The probe: parameter vectors -> 0.5 s renders -> what the matching agent hears, and the loss.

Input: normalized parameter vectors `[B, 24]` (torch, snapped where discrete).
Output: audio `[B, N]` (`ProbeRenderer`, through `synth.render.render_batch`, differentiable), and
`Heard` features of that audio plus the perceptual loss against cached target features
(`Hearing`). Every consumer (environment, baselines, evaluation) goes through these two objects,
so they all render and listen alike; tests may hand in doubles with the same shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from settings.loader import Settings

TargetCache = dict[str, torch.Tensor]  # every entry batch-first, rows replaceable


@dataclass
class Heard:
    """Features of a batch of renders (all batch-first, float32)."""

    logmel_db: torch.Tensor  # [B, T, M]
    mfcc: torch.Tensor  # [B, T, C]
    centroid_hz: torch.Tensor  # [B, T]
    loudness_db: torch.Tensor  # [B] integrated (LUFS-style) loudness


class Hearing(Protocol):
    """Features and perceptual loss, with target features computed once per episode."""

    def hear(self, audio: torch.Tensor) -> Heard: ...

    def cache_targets(self, audio: torch.Tensor) -> TargetCache: ...

    def loss(self, audio: torch.Tensor, targets: TargetCache) -> torch.Tensor: ...


Renderer = Callable[[torch.Tensor], torch.Tensor]


class ProbeRenderer:
    """`synth.render.render_batch` with the probe's note, length and seed fixed from settings."""

    def __init__(self, settings: Settings) -> None:
        from synth.render import render_batch

        self._render_batch = render_batch
        self.sample_rate_hz = settings.synth.sample_rate_hz
        self.duration_s = settings.synth.probe_s
        note_off_s = settings.match.probe_note_off_s
        self.note_off_s = note_off_s if note_off_s and note_off_s < self.duration_s else None
        self.midi_note = float(settings.synth.default_note)
        self.seed = settings.synth.seed  # the same noise in target and candidate renders

    def __call__(self, params_0to1: torch.Tensor) -> torch.Tensor:
        notes = torch.full((params_0to1.shape[0],), self.midi_note, dtype=params_0to1.dtype)
        return self._render_batch(
            params_0to1,
            notes,
            sample_rate_hz=self.sample_rate_hz,
            duration_s=self.duration_s,
            note_off_s=self.note_off_s,
            seed=self.seed,
        )


def render_at(renderer: Renderer, params_0to1: np.ndarray, positions: np.ndarray) -> torch.Tensor:
    """Render rows [K, 24] at batch positions [K] (unique) and return their audio [K, N].

    `synth.render.render_batch` draws its noise per batch position, so a target and the candidates
    compared with it must sit at the same position to hear the same noise; the other positions of
    the batch are filled with copies of the first row and discarded.
    """
    positions = np.asarray(positions, dtype=np.int64)
    if len(np.unique(positions)) != len(positions):
        raise ValueError("render_at: positions must be unique")
    batch = np.repeat(np.asarray(params_0to1[:1], dtype=np.float32), int(positions.max()) + 1, axis=0)
    batch[positions] = params_0to1
    audio = renderer(torch.from_numpy(batch))
    return audio[torch.from_numpy(positions)]


def replace_rows(cache: TargetCache, rows: torch.Tensor, new: TargetCache) -> None:
    """Write `new` (len(rows) entries) into `cache` at `rows`, in place."""
    for key, value in new.items():
        cache[key][rows] = value.to(cache[key].dtype)


def take_rows(cache: TargetCache, rows: torch.Tensor) -> TargetCache:
    return {key: value[rows] for key, value in cache.items()}
