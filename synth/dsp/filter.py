"""Resonant 12 dB/oct low-pass with a time-varying cutoff, and the DC blocker (batched torch).

Input: audio [B, N], cutoff [B, C] Hz per control chunk of `chunk` samples (C = ceil(N / chunk)),
Q [B]. Output: [B, N] filtered.

This is the streaming kernel's filter itself, solved in closed form per chunk so that torch can
batch it and differentiate it: a topology-preserving state-variable low-pass (Simper/Zavalishin,
the bilinear transform of 1 / (s^2 + s/Q + 1) with the cutoff pre-warped), coefficients constant
within a chunk as in `synth.dsp.kernel`. With state s = (ic1, ic2): s' = A s + b x, y = c.s + d x.
Within a chunk the output is the zero-state response (a short FFT convolution with the chunk's
impulse response) plus the zero-input response of the state at the chunk start; the states at
chunk starts follow s_{c+1} = A_c^M s_c + u_c, a short sequential loop over chunks. Float64 inside.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from synth.dsp.constants import DC_BLOCK_HZ


def chunk_starts(n_samples: int, chunk: int) -> Tensor:
    """Sample index of each control chunk's first sample: [ceil(N / chunk)] long."""
    return torch.arange(0, n_samples, chunk)


def _powers(a: Tensor, count: int) -> Tensor:
    """[..., 2, 2] -> [..., count, 2, 2]: A^0 .. A^(count-1), by doubling."""
    eye = torch.eye(2, dtype=a.dtype, device=a.device).expand(*a.shape[:-2], 1, 2, 2)
    pw = torch.cat([eye, a.unsqueeze(-3)], dim=-3)
    step = a @ a  # A^2
    while pw.shape[-3] < count:
        pw = torch.cat([pw, pw @ step.unsqueeze(-3)], dim=-3)
        step = step @ step
    return pw[..., :count, :, :]


def svf_lowpass(audio: Tensor, cutoff_hz: Tensor, q: Tensor, chunk: int, sample_rate_hz: float) -> Tensor:
    """Low-pass `audio` [B, N] with a cutoff per chunk [B, C] and a Q per patch [B]."""
    batch, n_samples = audio.shape
    n_chunks = cutoff_hz.shape[1]
    if n_chunks * chunk < n_samples:
        raise ValueError(f"svf_lowpass: {n_chunks} chunks of {chunk} do not cover {n_samples} samples")
    f64 = torch.float64
    x = torch.nn.functional.pad(audio.to(f64), (0, n_chunks * chunk - n_samples)).view(batch, n_chunks, chunk)
    g = torch.tan(math.pi * cutoff_hz.to(f64) / sample_rate_hz)  # [B, C]
    k = 1.0 / q.to(f64).unsqueeze(1)
    a1 = 1.0 / (1.0 + g * (g + k))
    a2 = g * a1
    a3 = g * a2
    mat = torch.stack([torch.stack([2 * a1 - 1, -2 * a2], -1), torch.stack([2 * a2, 1 - 2 * a3], -1)], -2)  # [B,C,2,2]
    b_vec = torch.stack([2 * a2, 2 * a3], -1)  # [B, C, 2]
    c_vec = torch.stack([a2, 1 - a3], -1)  # [B, C, 2]
    pw = _powers(mat, chunk + 1)  # [B, C, M+1, 2, 2]
    c_pw = (c_vec.unsqueeze(2).unsqueeze(3) @ pw[:, :, :chunk]).squeeze(3)  # c A^j, [B, C, M, 2]
    # impulse response within a chunk: h[0] = d, h[j] = c A^(j-1) b
    tail = (c_pw[:, :, : chunk - 1] * b_vec.unsqueeze(2)).sum(-1)
    h = torch.cat([a3.unsqueeze(2), tail], dim=2)  # [B, C, M]
    n_fft = 2 * chunk
    zero_state = torch.fft.irfft(torch.fft.rfft(x, n_fft) * torch.fft.rfft(h, n_fft), n_fft)[..., :chunk]
    # what one chunk's input adds to the state at the next chunk start: sum_i A^(M-1-i) b x_i
    drive_basis = (pw[:, :, :chunk].flip(2) @ b_vec.unsqueeze(2).unsqueeze(-1)).squeeze(-1)  # [B, C, M, 2]
    drive = (drive_basis * x.unsqueeze(-1)).sum(2)  # [B, C, 2]
    jump = pw[:, :, chunk]  # A^M, [B, C, 2, 2]
    j11, j12, j21, j22 = jump[..., 0, 0], jump[..., 0, 1], jump[..., 1, 0], jump[..., 1, 1]
    d1, d2 = drive[..., 0], drive[..., 1]
    s1, s2 = [x.new_zeros(batch)], [x.new_zeros(batch)]
    for c in range(n_chunks - 1):  # elementwise on [B]: far cheaper than tiny matrix products
        s1.append(j11[:, c] * s1[-1] + j12[:, c] * s2[-1] + d1[:, c])
        s2.append(j21[:, c] * s1[-2] + j22[:, c] * s2[-1] + d2[:, c])
    start_state = torch.stack([torch.stack(s1, dim=1), torch.stack(s2, dim=1)], dim=-1)  # [B, C, 2]
    zero_input = (c_pw * start_state.unsqueeze(2)).sum(-1)  # [B, C, M]
    return (zero_state + zero_input).reshape(batch, -1)[:, :n_samples].to(audio.dtype)


def dc_block(audio: Tensor, sample_rate_hz: float) -> Tensor:
    """One-pole DC blocker y[n] = x[n] - x[n-1] + R y[n-1] from rest, as an exact FFT convolution."""
    n_samples = audio.shape[1]
    r = math.exp(-2.0 * math.pi * DC_BLOCK_HZ / sample_rate_hz)
    n = torch.arange(1, n_samples, device=audio.device, dtype=torch.float64)
    h = torch.cat([torch.ones(1, device=audio.device, dtype=torch.float64), (r - 1.0) * r ** (n - 1.0)])
    n_fft = 2 * n_samples
    y = torch.fft.irfft(torch.fft.rfft(audio.to(torch.float64), n_fft) * torch.fft.rfft(h, n_fft), n_fft)
    return y[:, :n_samples].to(audio.dtype)
