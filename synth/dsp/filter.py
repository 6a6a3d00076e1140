"""Resonant 12 dB/oct low-pass with a time-varying cutoff, in the frame domain (batched torch).

Input: audio [B, N], cutoff [B, F] Hz at the frame centres `frame_centres(N, rate)`, Q [B].
Output: [B, N] filtered and DC-blocked.

Each STFT frame (Hann, hop = size / 4) is multiplied by the magnitude response of the streaming
filter (a topology-preserving state-variable low-pass, i.e. the bilinear transform of
1 / (s^2 + s/Q + 1) with the cutoff pre-warped) at that frame's cutoff, times a one-pole DC blocker.
Zero phase: for sustained sounds the spectrum equals the IIR's; transients and the ringing of very
high Q differ (see tests/synth/test_stream.py for the stated tolerance). Differentiable in the cutoff
and Q; cost one STFT and one inverse STFT per batch.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from synth.dsp.constants import DC_BLOCK_HZ, FILTER_FFT_AT_16K, FILTER_HOP_AT_16K


def fft_size(sample_rate_hz: float) -> tuple[int, int]:
    """(n_fft, hop) for a rate: 512 / 128 at 16 kHz, the nearest power of two elsewhere."""
    n_fft = 2 ** round(math.log2(FILTER_FFT_AT_16K * sample_rate_hz / 16000.0))
    return n_fft, n_fft * FILTER_HOP_AT_16K // FILTER_FFT_AT_16K


def frame_centres(n_samples: int, sample_rate_hz: float) -> Tensor:
    """Sample index of each STFT frame centre (centre=True framing), clamped to the buffer: [F] long."""
    _, hop = fft_size(sample_rate_hz)
    return (torch.arange(n_samples // hop + 1) * hop).clamp(max=n_samples - 1)


def lowpass_magnitude(freq_hz: Tensor, cutoff_hz: Tensor, q: Tensor, sample_rate_hz: float) -> Tensor:
    """|H| of the pre-warped state-variable low-pass (broadcasting); freq below Nyquist."""
    warped = torch.tan(math.pi * freq_hz / sample_rate_hz)
    g = torch.tan(math.pi * cutoff_hz / sample_rate_hz)
    x = warped / g
    return torch.rsqrt((1.0 - x * x) ** 2 + (x / q) ** 2)


def dc_block_magnitude(freq_hz: Tensor, sample_rate_hz: float) -> Tensor:
    """|H| of the one-pole DC blocker at DC_BLOCK_HZ (0 at DC)."""
    warped = torch.tan(math.pi * freq_hz / sample_rate_hz)
    g = math.tan(math.pi * DC_BLOCK_HZ / sample_rate_hz)
    return warped / torch.sqrt(warped * warped + g * g)


@functools.cache
def _window(n_fft: int, device: str, dtype: torch.dtype) -> Tensor:
    return torch.hann_window(n_fft, device=device, dtype=dtype)


def lowpass_frames(audio: Tensor, cutoff_hz: Tensor, q: Tensor, sample_rate_hz: float) -> Tensor:
    """Filter `audio` [B, N] with a cutoff per frame [B, F] and a Q per patch [B]."""
    n_fft, hop = fft_size(sample_rate_hz)
    n_samples = audio.shape[1]
    window = _window(n_fft, str(audio.device), audio.dtype)
    spec = torch.stft(audio, n_fft, hop, window=window, center=True, return_complex=True)  # [B, K, F]
    freq = torch.linspace(0.0, 0.5 * sample_rate_hz, n_fft // 2 + 1, device=audio.device, dtype=audio.dtype)
    freq = freq.clamp(max=0.4995 * sample_rate_hz)
    gain = lowpass_magnitude(freq.view(1, -1, 1), cutoff_hz.unsqueeze(1), q.view(-1, 1, 1), sample_rate_hz)
    gain = gain * dc_block_magnitude(freq, sample_rate_hz).view(1, -1, 1)
    return torch.istft(spec * gain, n_fft, hop, window=window, center=True, length=n_samples)
