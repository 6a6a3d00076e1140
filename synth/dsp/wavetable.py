"""Band-limited, mip-mapped wavetables for the morphing oscillator, and their batched lookup.

Input: nothing (tables are built once from Fourier series) / a morph position, a top frequency.
Output: `TABLES` [4 shapes, levels, TABLE_SIZE + 1] float32 (numpy; the last sample repeats the
first so linear interpolation needs no wrap), `mip_level(top_hz, sample_rate_hz)` (the finest level
whose every harmonic stays below Nyquist) and `patch_tables` (one morphed table per patch, torch).

Shapes (synth.params.WAVE_SHAPES): sine, saw, square, triangle, all rising through zero at phase 0,
peak ~1. Level l holds MAX_HARMONICS >> l harmonics, so an oscillator whose top frequency is f uses
at most floor(Nyquist / f) harmonics: nothing folds back.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from synth.dsp.constants import MAX_HARMONICS, N_MIP_LEVELS, N_SHAPES, TABLE_SIZE


def _series(shape: int, n_harmonics: int) -> np.ndarray:
    """Sine-series amplitudes b_k (k = 0..TABLE_SIZE/2) of one shape, truncated to n_harmonics."""
    k = np.arange(TABLE_SIZE // 2 + 1, dtype=np.float64)
    b = np.zeros_like(k)
    kk = k[1 : n_harmonics + 1]
    if shape == 0:  # sine
        b[1] = 1.0
    elif shape == 1:  # saw: 2p on (-1/2, 1/2), rising through zero at phase 0, falling edge at phase 1/2
        b[1 : n_harmonics + 1] = (2.0 / math.pi) / kk * np.where(kk % 2 == 1, 1.0, -1.0)
    elif shape == 2:  # square
        b[1 : n_harmonics + 1] = np.where(kk % 2 == 1, (4.0 / math.pi) / kk, 0.0)
    else:  # triangle
        sign = np.where(((kk - 1) // 2) % 2 == 0, 1.0, -1.0)
        b[1 : n_harmonics + 1] = np.where(kk % 2 == 1, (8.0 / math.pi**2) * sign / kk**2, 0.0)
    return b


@functools.cache
def build_tables() -> np.ndarray:
    """[N_SHAPES, N_MIP_LEVELS, TABLE_SIZE + 1] float32, built with an inverse real FFT."""
    out = np.empty((N_SHAPES, N_MIP_LEVELS, TABLE_SIZE + 1), dtype=np.float32)
    for shape in range(N_SHAPES):
        for level in range(N_MIP_LEVELS):
            b = _series(shape, MAX_HARMONICS >> level)
            # x[n] = sum_k b_k sin(2 pi k n / T)  <=>  rfft coefficients -i * b_k * T / 2
            table = np.fft.irfft(-1j * b * TABLE_SIZE / 2.0, n=TABLE_SIZE)
            out[shape, level, :TABLE_SIZE] = table
            out[shape, level, TABLE_SIZE] = table[0]
    return out


def mip_level_np(top_hz: np.ndarray | float, sample_rate_hz: float) -> np.ndarray:
    """Finest level whose highest harmonic (MAX_HARMONICS >> level) * top_hz stays below Nyquist."""
    top = np.maximum(np.asarray(top_hz, dtype=np.float64), 1e-3)
    level = np.ceil(np.log2(MAX_HARMONICS * top / (0.5 * sample_rate_hz)))
    return np.clip(level, 0, N_MIP_LEVELS - 1).astype(np.int64)


def mip_level(top_hz: Tensor, sample_rate_hz: float) -> Tensor:
    """Torch twin of `mip_level_np` (no gradient: a level is a choice)."""
    top = top_hz.detach().to(torch.float64).clamp(min=1e-3)
    level = torch.ceil(torch.log2(MAX_HARMONICS * top / (0.5 * sample_rate_hz)))
    return level.clamp(0, N_MIP_LEVELS - 1).long()


@functools.cache
def _tables_torch(device: str, dtype: torch.dtype) -> Tensor:
    return torch.from_numpy(build_tables()).to(device=device, dtype=dtype)


def patch_tables(morph_0to3: Tensor, level: Tensor) -> Tensor:
    """One table per patch: morph [B] in [0, 3] (differentiable), mip level [B] -> [B, TABLE_SIZE + 1].

    The morph crossfades linearly between the two neighbouring shapes at the chosen level.
    """
    tables = _tables_torch(str(morph_0to3.device), morph_0to3.dtype)
    lo = morph_0to3.detach().floor().clamp(0, N_SHAPES - 2).long()
    frac = (morph_0to3 - lo.to(morph_0to3.dtype)).unsqueeze(1)
    t_lo = tables[lo, level]
    t_hi = tables[lo + 1, level]
    return t_lo + frac * (t_hi - t_lo)
