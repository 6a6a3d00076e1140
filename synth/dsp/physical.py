"""Normalized parameters -> physical values, in torch (the twin of `synth.params.to_values`).

Input: `params_0to1` [B, 24] in wire order. Output: [B, 24] physical values (Hz, seconds, cents,
semitones, gains...) derived from `synth.params.PARAMS` (ranges and curves are not re-typed here).
Continuous parameters keep their gradient; discrete ones are snapped (no gradient).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from synth.params import N_PARAMS, PARAMS


def _columns(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, ...]:
    low = torch.tensor([p.low for p in PARAMS], device=device, dtype=dtype)
    span = torch.tensor([p.high - p.low for p in PARAMS], device=device, dtype=dtype)
    log_ratio = torch.tensor(
        [math.log(p.high / p.low) if p.curve == "log" else 0.0 for p in PARAMS], device=device, dtype=dtype
    )
    is_log = torch.tensor([p.curve == "log" for p in PARAMS], device=device)
    steps = torch.tensor([max(p.n_steps - 1, 0) for p in PARAMS], device=device, dtype=dtype)
    return low, span, log_ratio, is_log, steps


def snap_0to1(params_0to1: Tensor) -> Tensor:
    """Clamp to [0,1] and snap the discrete parameters (straight value, no gradient through snapping)."""
    if params_0to1.ndim != 2 or params_0to1.shape[1] != N_PARAMS:
        raise ValueError(f"expected params of shape [B, {N_PARAMS}], got {tuple(params_0to1.shape)}")
    x = params_0to1.clamp(0.0, 1.0)
    _, _, _, _, steps = _columns(x.device, x.dtype)
    discrete = steps > 0
    snapped = torch.round(x * steps) / steps.clamp(min=1.0)
    return torch.where(discrete, snapped.detach(), x)


def to_physical(params_0to1: Tensor) -> Tensor:
    """Normalized [B, 24] -> physical [B, 24] (clamped, snapped, log or linear per the table)."""
    x = snap_0to1(params_0to1)
    low, span, log_ratio, is_log, _ = _columns(x.device, x.dtype)
    linear = low + x * span
    logarithmic = low * torch.exp(x * log_ratio)
    return torch.where(is_log, logarithmic, linear)
