"""YIN pitch (f0 + confidence) on batched analysis frames in torch (loop twin: `features.stream_kernels.yin_pitch`).

Input: raw frames `[..., window]` and the `AnalysisPlan`.
Output: `pitch_hz` (0 when the frame, DC removed, is below the silence floor) and `pitch_confidence`
= 1 - the cumulative-mean-normalized difference at the chosen lag, clipped to [0, 1].

Algorithm (de Cheveigné & Kawahara 2002, steps 1-5): the frame's mean is removed; the difference
d(tau) over an integration window of `window - tau_max` frames comes from one FFT correlation and
running energies; d'(tau) = d(tau) tau / sum_{j<=tau} d(j) (a tiny floor keeps silence at 1);
the lag is the first trough of d' below `pitch_threshold` in [tau_min, tau_max), else the global
minimum there, refined by parabolic interpolation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from features.dsp import AnalysisPlan


def yin_correlation(frames: torch.Tensor, plan: AnalysisPlan) -> tuple[torch.Tensor, torch.Tensor]:
    """`[..., window]` frames -> (mean-removed frames x, corr[..., tau] = sum_{j<w} x[j] x[j+tau], tau <= tau_max)."""
    n, w, tmax = plan.window, plan.yin_width, plan.tau_max
    x = frames - frames.mean(-1, keepdim=True)
    # a convolution with the reversed head: no circular wrap for tau <= tau_max
    head = F.pad(x[..., :w].flip(-1), (0, n - w))  # explicit zero padding: rfft(n=...) pads more slowly
    spectrum = torch.fft.rfft(head) * torch.fft.rfft(x)
    return x, torch.fft.irfft(spectrum, n=n)[..., w - 1 : w + tmax]


def yin_torch(frames: torch.Tensor, plan: AnalysisPlan) -> torch.Tensor:
    """`[..., window]` frames -> `[..., 2]` (pitch_hz, pitch_confidence)."""
    w, tmax, tmin = plan.yin_width, plan.tau_max, plan.tau_min
    x, corr = yin_correlation(frames, plan)
    sq = x.square()
    cs = sq.cumsum(-1)  # cs[j] = sum of sq[: j + 1]
    before = F.pad(cs[..., :tmax], (1, 0))  # energy before lag tau: sum of sq[:tau]
    energy_lag = cs[..., w - 1 : w + tmax] - before  # sum of sq[tau : tau + w]
    diff = (energy_lag + cs[..., w - 1 : w] - 2.0 * corr).clamp_min(0.0)
    eps = 2.0 * w * plan.floor_power
    tau = torch.arange(tmax + 1, device=x.device, dtype=x.dtype)
    eps_tau = eps * tau
    cmnd = (diff * tau + eps_tau) / (diff.cumsum(-1) + eps_tau).clamp_min(1e-30)  # d(0) = 0: cumsum from tau 1
    cmnd[..., 0] = 1.0
    mid = cmnd[..., tmin:tmax]
    trough = (mid < cmnd[..., tmin - 1 : tmax - 1]) & (mid <= cmnd[..., tmin + 1 : tmax + 1])
    below = trough & (mid < plan.pitch_threshold)
    first = below.to(torch.int8).argmax(-1)
    best = torch.where(below.any(-1), first, mid.argmin(-1)) + tmin
    y0 = cmnd.gather(-1, (best - 1).unsqueeze(-1)).squeeze(-1)
    y1 = cmnd.gather(-1, best.unsqueeze(-1)).squeeze(-1)
    y2 = cmnd.gather(-1, (best + 1).unsqueeze(-1)).squeeze(-1)
    curve = y0 - 2.0 * y1 + y2
    safe = curve > 1e-12
    shift = torch.where(safe, 0.5 * (y0 - y2) / torch.where(safe, curve, torch.ones_like(curve)), torch.zeros_like(y1))
    period = best.to(x.dtype) + shift.clamp(-1.0, 1.0)
    voiced = sq.mean(-1) > plan.floor_power
    pitch_hz = torch.where(voiced, plan.sample_rate_hz / period, torch.zeros_like(period))
    confidence = torch.where(voiced, (1.0 - y1).clamp(0.0, 1.0), torch.zeros_like(y1))
    return torch.stack([pitch_hz, confidence], dim=-1)
