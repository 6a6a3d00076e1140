"""The LFO and its routing (batched torch).

Input: sample times [N] s, rate [B] Hz, amount [B] 0..1, target [B] (0 pitch, 1 filter, 2 amplitude).
Output: `LfoRouting` with the pitch ratio [B, N] (None when no patch modulates pitch), the cutoff
offset [B, N] in octaves and the amplitude gain [B, N]. The LFO is a sine starting at phase 0 at
the note start. Depths: `constants.LFO_PITCH_SEMITONES`, `LFO_FILTER_OCTAVES`; amplitude gain
1 - amount * (1 - lfo) / 2. (torchsynth's LFO, 0.78 ms per batch of 128 x 0.5 s at control rate,
mixes five shapes in its own ranges and binds the batch size at construction: not used.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from synth.dsp.constants import LFO_FILTER_OCTAVES, LFO_PITCH_SEMITONES


@dataclass(frozen=True)
class LfoRouting:
    pitch_ratio: Tensor | None  # [B, N] frequency multiplier, or None
    pitch_top: Tensor  # [B] the largest pitch ratio (for band-limiting)
    filter_octaves: Tensor  # [B, N]
    amp_gain: Tensor  # [B, N]


def lfo_signal(t_s: Tensor, rate_hz: Tensor) -> Tensor:
    return torch.sin(2.0 * math.pi * rate_hz.unsqueeze(1) * t_s.unsqueeze(0))


def route(t_s: Tensor, rate_hz: Tensor, amount: Tensor, target: Tensor) -> LfoRouting:
    lfo = lfo_signal(t_s, rate_hz)
    target = target.detach().round()
    to_pitch = (target == 0).to(amount.dtype) * amount
    to_filter = (target == 1).to(amount.dtype) * amount
    to_amp = (target == 2).to(amount.dtype) * amount
    pitch_ratio = None
    if bool((to_pitch > 0).any()) or amount.requires_grad:
        pitch_ratio = torch.exp2(to_pitch.unsqueeze(1) * (LFO_PITCH_SEMITONES / 12.0) * lfo)
    pitch_top = torch.exp2(to_pitch.detach() * (LFO_PITCH_SEMITONES / 12.0))
    filter_octaves = to_filter.unsqueeze(1) * LFO_FILTER_OCTAVES * lfo
    amp_gain = 1.0 - to_amp.unsqueeze(1) * (1.0 - lfo) * 0.5
    return LfoRouting(pitch_ratio, pitch_top, filter_octaves, amp_gain)
