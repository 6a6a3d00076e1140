"""Unison wavetable oscillator bank (batched torch, differentiable in frequency, detune and morph).

Input: one morphed table per patch [B, TABLE_SIZE + 1], base frequency [B] Hz, an optional pitch
ratio [B, N] (LFO on pitch), unison voice count [B] (snapped 1..7) and detune spread [B] cents.
Output: [B, N], the sum of the active voices, each voice at 1 / sqrt(voices).

Voice u of U sits at detune * (u / (U - 1) - 1/2) cents (U = 1: 0) and starts at phase
frac(u * golden ratio). Phases are computed in closed form from one cumulative sum per patch
(the pitch ratio is shared by all voices), the bulk in float64 so long renders keep their tuning.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from synth.dsp.constants import MAX_UNISON, TABLE_SIZE, UNISON_PHASE_STEP


def unison_layout(n_voices: Tensor, detune_cents: Tensor, max_voices: int = MAX_UNISON) -> tuple[Tensor, Tensor]:
    """Voice offsets [B, max_voices] cents (differentiable in detune) and gains [B, max_voices] (0 when inactive)."""
    u = torch.arange(max_voices, device=detune_cents.device, dtype=detune_cents.dtype)
    n = n_voices.detach().round().clamp(1, MAX_UNISON).unsqueeze(1)
    position = torch.where(n > 1, u / (n - 1).clamp(min=1) - 0.5, torch.zeros_like(u))
    offsets = detune_cents.unsqueeze(1) * position
    gains = (u < n).to(detune_cents.dtype) / torch.sqrt(n)
    return offsets, gains


def unison_phases(max_voices: int = MAX_UNISON) -> list[float]:
    """Start phase of each voice, in periods."""
    return [math.fmod(u * UNISON_PHASE_STEP, 1.0) for u in range(max_voices)]


def elapsed_s(n_samples: int, sample_rate_hz: float, pitch_ratio: Tensor | None, batch: int, device) -> Tensor:
    """Pitch-weighted time since the note start, float64 [B, N] (or [1, N] without pitch modulation)."""
    if pitch_ratio is None:
        return (torch.arange(n_samples, device=device, dtype=torch.float64) / sample_rate_hz).unsqueeze(0)
    ratio = pitch_ratio.to(torch.float64)
    return (torch.cumsum(ratio, dim=1) - ratio[:, :1]) / sample_rate_hz


def unison_bank(
    table: Tensor,
    base_hz: Tensor,
    elapsed: Tensor,
    offsets_cents: Tensor,
    gains: Tensor,
) -> Tensor:
    """Render the unison sum [B, N] from the patch tables and the pitch-weighted time `elapsed` [B|1, N]."""
    batch = table.shape[0]
    n_samples = elapsed.shape[1]
    dtype = table.dtype
    size = float(TABLE_SIZE)
    # the bulk of the phase (base frequency) in float64, the small per-voice detune part in float32;
    # everything in table samples, wrapped with remainder (gradient 1) to [0, TABLE_SIZE)
    bulk64 = base_hz.to(torch.float64).unsqueeze(1) * elapsed
    bulk = ((bulk64 - bulk64.detach().floor()) * size).to(dtype)  # [B, N]
    delta = base_hz.unsqueeze(1) * (torch.exp2(offsets_cents / 1200.0) - 1.0) * size  # [B, U] table samples/s
    start = torch.tensor(unison_phases(offsets_cents.shape[1]), device=table.device, dtype=dtype) * size
    position = torch.addcmul(
        bulk.unsqueeze(1) + start.view(1, -1, 1), delta.unsqueeze(2), elapsed.to(dtype).unsqueeze(1)
    ).remainder_(size)  # [B, U, N]
    index = position.detach().long().clamp_(0, TABLE_SIZE - 1)
    weight = position - index.to(dtype)
    flat = index.view(batch, -1)
    slope = table[:, 1:] - table[:, :-1]  # [B, TABLE_SIZE]: one gather for the value, one for the slope
    voices = torch.addcmul(table.gather(1, flat).view_as(position), weight, slope.gather(1, flat).view_as(position))
    return torch.bmm(gains.unsqueeze(1), voices).view(batch, n_samples)
