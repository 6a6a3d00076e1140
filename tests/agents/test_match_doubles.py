"""Small, fast test doubles for the probe renderer and the hearing (features + perceptual loss).

They follow the documented interfaces (`agents.match.probe.Renderer` and `Hearing`) with a toy
synth (two oscillators, noise, a spectral low-pass, an attack ramp) and STFT band features, so the
environment, baselines and evaluation can be tested in milliseconds and independently of the real
synth's and features' numbers. The tests at the bottom check that the doubles themselves behave
(the loss is zero for identical audio and grows with parameter distance, gradients flow).
"""

from __future__ import annotations

import math

import torch

from agents.match.probe import Heard, TargetCache

SAMPLE_RATE_HZ = 16000
N_SAMPLES = 4000  # 0.25 s keeps the double fast
N_FFT = 512
HOP = 256
N_BANDS = 16
MAX_ROWS = 1024


class FakeRenderer:
    """params [B, 24] in [0, 1] -> audio [B, N_SAMPLES]; differentiable in the continuous parameters.

    Like `synth.render.render_batch`, the noise depends on the batch position (row b: stream b).
    """

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.noise = torch.randn(MAX_ROWS, N_SAMPLES, generator=gen) * 0.3
        self.t_s = torch.arange(N_SAMPLES, dtype=torch.float32) / SAMPLE_RATE_HZ
        self.calls = 0
        self.rows = 0

    def __call__(self, p: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.rows += p.shape[0]
        p = p.float()
        f0_hz = 220.0
        phase = f0_hz * self.t_s[None, :]
        sine = torch.sin(2 * math.pi * phase)
        saw = 2.0 * torch.remainder(phase, 1.0) - 1.0
        w1 = p[:, 0:1]
        osc1 = p[:, 1:2] * ((1 - w1) * sine + w1 * saw)
        semis = torch.round(p[:, 4:5] * 48 - 24)
        osc2 = p[:, 3:4] * torch.sin(2 * math.pi * f0_hz * 2 ** (semis / 12) * self.t_s[None, :])
        x = (osc1 + osc2 + p[:, 8:9] * self.noise[: p.shape[0]]) * p[:, 23:24]
        spec = torch.fft.rfft(x, dim=1)
        freqs = torch.fft.rfftfreq(N_SAMPLES, 1 / SAMPLE_RATE_HZ)
        cutoff_hz = 30.0 * (20000.0 / 30.0) ** p[:, 9:10]
        x = torch.fft.irfft(spec / (1 + (freqs[None, :] / cutoff_hz) ** 4), n=N_SAMPLES, dim=1)
        attack_s = 0.001 * 4000.0 ** p[:, 12:13]
        return x * torch.clamp(self.t_s[None, :] / attack_s, max=1.0)


class FakeHearing:
    """STFT band 'log-mel', DCT 'MFCC', centroid, loudness and an L1 log-band loss."""

    def __init__(self) -> None:
        edges = torch.logspace(math.log10(2), math.log10(N_FFT // 2), N_BANDS + 1).long()
        fb = torch.zeros(N_BANDS, N_FFT // 2 + 1)
        for b in range(N_BANDS):
            fb[b, edges[b] : max(edges[b + 1], edges[b] + 1)] = 1.0
        self.fb = fb
        n = torch.arange(N_BANDS, dtype=torch.float32)
        self.dct = torch.cos(math.pi / N_BANDS * (n[None, :] + 0.5) * torch.arange(8)[:, None])
        self.freqs_hz = torch.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE_HZ)
        self.window = torch.hann_window(N_FFT)

    def _power(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio, N_FFT, HOP, window=self.window, return_complex=True, center=True)
        return spec.abs() ** 2  # [B, F, T]

    def hear(self, audio: torch.Tensor) -> Heard:
        power = self._power(audio)
        logmel = 10 * torch.log10(torch.einsum("mf,bft->btm", self.fb, power) + 1e-8)
        mfcc = torch.einsum("cm,btm->btc", self.dct, logmel) / N_BANDS
        centroid = (self.freqs_hz[None, :, None] * power).sum(1) / (power.sum(1) + 1e-8)
        loud = 10 * torch.log10((audio**2).mean(dim=1) + 1e-9)
        return Heard(logmel_db=logmel, mfcc=mfcc, centroid_hz=centroid, loudness_db=loud)

    def cache_targets(self, audio: torch.Tensor) -> TargetCache:
        return {"logmel": self.hear(audio).logmel_db}

    def loss(self, audio: torch.Tensor, targets: TargetCache) -> torch.Tensor:
        cur = self.hear(audio).logmel_db.clamp(min=-80)
        return (cur - targets["logmel"].clamp(min=-80)).abs().mean(dim=(1, 2)) / 20.0


def test_double_loss_is_zero_for_identical_and_grows_with_distance() -> None:
    renderer, hearing = FakeRenderer(), FakeHearing()
    base = torch.full((1, 24), 0.5)
    far = base.clone()
    far[0, 9] = 0.2  # close the filter
    near = base.clone()
    near[0, 9] = 0.45
    targets = hearing.cache_targets(renderer(base))
    losses = [float(hearing.loss(renderer(x), targets)) for x in (base, near, far)]
    assert losses[0] < 1e-6 < losses[1] < losses[2]


def test_double_is_differentiable() -> None:
    renderer, hearing = FakeRenderer(), FakeHearing()
    targets = hearing.cache_targets(renderer(torch.full((1, 24), 0.5)))
    x = torch.full((1, 24), 0.3, requires_grad=True)
    hearing.loss(renderer(x), targets).sum().backward()
    assert x.grad is not None and float(x.grad[0, 9].abs()) > 0
