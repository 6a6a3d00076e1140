"""features.loss_residual: the MR-STFT loss's residual vectors, against librosa's STFT."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from features.config import LossSettings
from features.loss import PerceptualLoss
from features.loss_residual import MRSTFTResidual

SR = 16000


def _tones(freqs_hz: list[float], n: int = 8000) -> torch.Tensor:
    t = np.arange(n) / SR
    rows = [0.5 * np.sin(2 * np.pi * f * t) * np.exp(-3 * t) for f in freqs_hz]
    return torch.from_numpy(np.stack(rows).astype(np.float32))


def test_identical_audio_has_zero_residuals() -> None:
    residual = MRSTFTResidual(PerceptualLoss(sample_rate_hz=SR))
    audio = _tones([220.0, 440.0])
    r = residual(audio, residual.prepare(audio))
    assert r.shape[0] == 2 and r.shape[1] > 10_000
    assert torch.count_nonzero(r) == 0


def test_residual_parts_are_librosas_spectral_convergence_and_log_power() -> None:
    sizes = [1024, 256]
    residual = MRSTFTResidual(PerceptualLoss(LossSettings(fft_sizes=sizes), sample_rate_hz=SR))
    audio, target = _tones([330.0]), _tones([300.0])
    r = residual(audio, residual.prepare(target))[0].numpy().astype(np.float64)
    at, n = 0, len(sizes)
    for size in sizes:
        spec = [
            librosa.stft(
                x.numpy()[0], n_fft=size, hop_length=size // 4, window="hann", center=True, pad_mode="constant"
            )
            for x in (audio, target)
        ]
        mag = [np.abs(s).T.astype(np.float64) for s in spec]  # [frames, bins]
        cells = mag[0].size
        sc = np.linalg.norm(mag[0] - mag[1]) / np.linalg.norm(mag[1])
        got_sc = np.linalg.norm(r[at : at + cells]) * n
        assert got_sc == pytest.approx(sc, rel=2e-3)
        wsum = np.sum(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / size))  # the loss's window sums to 1
        log_power = [np.log((m / wsum) ** 2 + 1e-9) for m in mag]
        want = (log_power[0] - log_power[1]).ravel() * 0.5 / (n * np.sqrt(cells))
        got = r[at + cells : at + 2 * cells]
        assert np.abs(got - want).max() <= 2e-3 * np.abs(want).max()
        at += 2 * cells
    assert at == r.size


def test_a_target_of_another_length_is_rejected() -> None:
    residual = MRSTFTResidual(PerceptualLoss(sample_rate_hz=SR))
    with pytest.raises(ValueError, match="prepared target"):
        residual(_tones([220.0], 8000), residual.prepare(_tones([220.0], 4000)))
