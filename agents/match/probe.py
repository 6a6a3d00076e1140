"""The probe: parameter vectors -> 0.5 s renders -> what the matching agent hears, and the loss.

Input: normalized parameter vectors `[B, 24]` (torch, snapped where discrete).
Output: audio `[B, N]` (`ProbeRenderer`, through `synth.render.render_batch`, differentiable), and
`Heard` features of that audio plus the perceptual loss against cached target features
(`Hearing`). Every consumer (environment, baselines, evaluation) goes through these two objects,
so they all render and listen alike; tests may hand in doubles with the same shape. A `Hearing`
may also offer `hear_and_loss` and `hear_targets` (two calls in one pass, on worker threads); the
functions of the same names below use them when there, else make the two calls.
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


def hear_and_loss(
    hearing: Hearing, audio: torch.Tensor, targets: TargetCache, *, threads: int = 1
) -> tuple[Heard, torch.Tensor]:
    """(`hearing.hear(audio)`, `hearing.loss(audio, targets)`), in one pass where the hearing offers it."""
    both = getattr(hearing, "hear_and_loss", None)
    if both is not None:
        return both(audio, targets, threads=threads)
    return hearing.hear(audio), hearing.loss(audio, targets)


def hear_targets(hearing: Hearing, audio: torch.Tensor, *, threads: int = 1) -> tuple[TargetCache, Heard]:
    """(`hearing.cache_targets(audio)`, `hearing.hear(audio)`), in one pass where the hearing offers it."""
    both = getattr(hearing, "hear_targets", None)
    if both is not None:
        return both(audio, threads=threads)
    return hearing.cache_targets(audio), hearing.hear(audio)


class ProbeRenderer:
    """`synth.render.render_batch` with the probe's note, length and seed fixed from settings.

    `threads`: rows rendered on this many threads (None: torch's thread count, render_batch's own
    choice). The kernel path takes its thread count from `torch.get_num_threads()`, so it is raised
    to `threads` for the duration of the call only (the rows and their noise do not depend on it).
    """

    def __init__(self, settings: Settings, *, threads: int | None = None) -> None:
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"ProbeRenderer: threads must be an int >= 1 or None, got {threads!r}")
        self.threads = threads
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
        previous = torch.get_num_threads()
        if self.threads is None or self.threads == previous:
            return self._render(params_0to1, notes)
        torch.set_num_threads(self.threads)
        try:
            return self._render(params_0to1, notes)
        finally:
            torch.set_num_threads(previous)

    def _render(self, params_0to1: torch.Tensor, notes: torch.Tensor) -> torch.Tensor:
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
