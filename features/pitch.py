"""YIN pitch (f0 + confidence) on analysis frames, in torch (batched) and numpy (one frame, no allocation).

Input: raw frames `[..., window]` (torch) or one `window`-long float64 frame (numpy) and the `AnalysisPlan`.
Output: `pitch_hz` (0 when the frame, DC removed, is below the silence floor) and `pitch_confidence`
= 1 - the cumulative-mean-normalized difference at the chosen lag, clipped to [0, 1].

Algorithm (de Cheveigné & Kawahara 2002, steps 1-5): the frame's mean is removed; the difference
d(tau) over an integration window of `window - tau_max` frames comes from one FFT correlation and
running energies; d'(tau) = d(tau) tau / sum_{j<=tau} d(j) (a tiny floor keeps silence at 1);
the lag is the first trough of d' below `pitch_threshold` in [tau_min, tau_max), else the global
minimum there, refined by parabolic interpolation.
"""

from __future__ import annotations

import numpy as np
import torch

from features.dsp import AnalysisPlan


def yin_torch(frames: torch.Tensor, plan: AnalysisPlan) -> torch.Tensor:
    """`[..., window]` frames -> `[..., 2]` (pitch_hz, pitch_confidence)."""
    n, w, tmax, tmin = plan.window, plan.yin_width, plan.tau_max, plan.tau_min
    x = frames - frames.mean(-1, keepdim=True)
    corr = torch.fft.irfft(torch.fft.rfft(x[..., :w], n=n).conj() * torch.fft.rfft(x, n=n), n=n)[..., : tmax + 1]
    sq = x.square()
    cs = torch.cat([torch.zeros_like(sq[..., :1]), sq.cumsum(-1)], dim=-1)
    lags = torch.arange(tmax + 1, device=x.device)
    energy_lag = cs[..., lags + w] - cs[..., lags]
    diff = (cs[..., w : w + 1] + energy_lag - 2.0 * corr).clamp_min(0.0)
    eps = 2.0 * w * plan.floor_power
    tau = lags.to(x.dtype)
    cmnd = (diff * tau + eps * tau) / (diff.cumsum(-1) - diff[..., :1] + eps * tau)
    cmnd = torch.where(lags == 0, torch.ones_like(cmnd), cmnd)
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


class YinFrame:
    """Numpy YIN on one frame with every buffer allocated once (the streaming face)."""

    def __init__(self, plan: AnalysisPlan) -> None:
        self.plan = plan
        n, w, tmax = plan.window, plan.yin_width, plan.tau_max
        self._x = np.zeros(n)
        self._head = np.zeros(n)  # the first w frames of x, zero padded
        self._spec_x = np.zeros(n // 2 + 1, dtype=np.complex128)
        self._spec_h = np.zeros(n // 2 + 1, dtype=np.complex128)
        self._corr = np.zeros(n)
        self._sq = np.zeros(n)
        self._cs = np.zeros(n + 1)
        self._diff = np.zeros(tmax + 1)
        self._cmnd = np.zeros(tmax + 1)
        self._den = np.zeros(tmax + 1)
        self._tau = np.arange(tmax + 1, dtype=np.float64)
        self._mask = np.zeros(tmax - plan.tau_min, dtype=bool)
        self._mask2 = np.zeros(tmax - plan.tau_min, dtype=bool)
        self._w = w

    def process(self, frame: np.ndarray) -> tuple[float, float]:
        """One `window`-long frame -> (pitch_hz, pitch_confidence)."""
        p, w, tmax, tmin = self.plan, self._w, self.plan.tau_max, self.plan.tau_min
        x, sq, cs, diff, cmnd, den = self._x, self._sq, self._cs, self._diff, self._cmnd, self._den
        np.subtract(frame, frame.mean(), out=x)
        self._head[:w] = x[:w]
        np.fft.rfft(self._head, out=self._spec_h)
        np.fft.rfft(x, out=self._spec_x)
        np.conjugate(self._spec_h, out=self._spec_h)
        np.multiply(self._spec_h, self._spec_x, out=self._spec_h)
        np.fft.irfft(self._spec_h, n=p.window, out=self._corr)
        np.multiply(x, x, out=sq)
        np.cumsum(sq, out=cs[1:])
        # diff[tau] = energy(head) + energy(x[tau:tau+w]) - 2 corr[tau]
        np.subtract(cs[w : w + tmax + 1], cs[: tmax + 1], out=diff)
        diff += cs[w]
        diff -= self._corr[: tmax + 1]
        diff -= self._corr[: tmax + 1]
        np.maximum(diff, 0.0, out=diff)
        eps = 2.0 * w * p.floor_power
        np.cumsum(diff, out=den)
        den -= diff[0]
        np.multiply(self._tau, eps, out=cmnd)
        den += cmnd
        den[0] = 1.0
        np.multiply(diff, self._tau, out=diff)
        cmnd += diff
        np.divide(cmnd, den, out=cmnd)
        cmnd[0] = 1.0
        mid = cmnd[tmin:tmax]
        np.less(mid, cmnd[tmin - 1 : tmax - 1], out=self._mask)
        np.less_equal(mid, cmnd[tmin + 1 : tmax + 1], out=self._mask2)
        np.logical_and(self._mask, self._mask2, out=self._mask)
        np.less(mid, p.pitch_threshold, out=self._mask2)
        np.logical_and(self._mask, self._mask2, out=self._mask)
        first = int(self._mask.argmax())
        best = (first if self._mask[first] else int(mid.argmin())) + tmin
        y0, y1, y2 = float(cmnd[best - 1]), float(cmnd[best]), float(cmnd[best + 1])
        curve = y0 - 2.0 * y1 + y2
        shift = min(1.0, max(-1.0, 0.5 * (y0 - y2) / curve)) if curve > 1e-12 else 0.0
        if cs[-1] / p.window <= p.floor_power:
            return 0.0, 0.0
        return p.sample_rate_hz / (best + shift), min(1.0, max(0.0, 1.0 - y1))
