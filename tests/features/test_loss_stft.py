"""features.loss_kernels STFT: torch.stft's values (centred, zero-padded, hop size / 4), and the fused scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from features import loss_kernels


def _torch_stft(audio: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    size = window.shape[0]
    spec = torch.stft(audio, size, size // 4, window=window, center=True, pad_mode="constant", return_complex=True)
    return spec.transpose(-1, -2).contiguous()


@pytest.mark.parametrize(("size", "n_samples"), [(2048, 8000), (1024, 8000), (512, 8001), (64, 1000), (256, 100)])
def test_numba_stft_equals_torch_stft(size: int, n_samples: int) -> None:
    rng = np.random.default_rng(size + n_samples)
    audio = torch.from_numpy(rng.uniform(-1, 1, (3, n_samples)).astype(np.float32))
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / size)
    window = torch.from_numpy((hann / hann.sum()).astype(np.float32))
    want = _torch_stft(audio, window).numpy()
    out = np.full((3, loss_kernels.n_frames(n_samples, size), size // 2 + 1), np.nan, np.complex64)
    loss_kernels.stft(audio.numpy(), window.numpy(), out)
    assert out.shape == want.shape  # frame count as torch's, also when the audio is shorter than a frame
    scale = np.abs(want).max()
    assert np.abs(out - want).max() <= 1e-6 * scale
    # one row at a time (the fused distance pass) gives the same bits as the batch
    frames = np.empty((out.shape[1], size), np.float32)
    row = np.empty_like(out[1])
    loss_kernels.stft_row(audio.numpy()[1], window.numpy(), frames, row)
    assert np.array_equal(row, out[1])


def test_edge_frames_are_zero_padded_not_reflected() -> None:
    size = 64
    audio = np.zeros((1, 256), np.float32)
    audio[0, 0] = 1.0  # an impulse at the first sample: only frames that cover it see it
    window = np.ones(size, np.float32)
    out = np.empty((1, loss_kernels.n_frames(256, size), size // 2 + 1), np.complex64)
    loss_kernels.stft(audio, window, out)
    covering = [t for t in range(out.shape[1]) if t * (size // 4) - size // 2 <= 0 < t * (size // 4) + size // 2]
    for t in range(out.shape[1]):
        expected = 1.0 if t in covering else 0.0
        np.testing.assert_allclose(np.abs(out[0, t]), expected, atol=1e-7)


@pytest.mark.parametrize("broadcast", [False, True])
def test_fused_scores_equal_scoring_the_materialized_stft(broadcast: bool) -> None:
    """stft_scores (transform + score per row, in cache) = stft_distances over stft's output, bit for bit."""
    rng = np.random.default_rng(7)
    size, n_samples = 512, 4000
    audio = rng.uniform(-0.5, 0.5, (4, n_samples)).astype(np.float32)
    window = np.hanning(size + 1)[:-1].astype(np.float32)
    n = loss_kernels.n_frames(n_samples, size)
    spec = np.empty((4, n, size // 2 + 1), np.complex64)
    loss_kernels.stft(audio, window, spec)
    n_targets = 1 if broadcast else 4
    mag = rng.uniform(0.0, 0.1, (n_targets, n * (size // 2 + 1))).astype(np.float32)
    log = np.log(mag**2 + 1e-9).astype(np.float32)
    gain = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    spec_ri = spec.reshape(4, -1).view(np.float32)
    want = loss_kernels.stft_distances((spec_ri,), gain, (mag,), (log,), 1e-12, 1e-9)[:, 0]
    got = loss_kernels.stft_scores(audio, window, gain, mag, log, 1e-12, 1e-9)
    assert np.array_equal(got, want)
    assert np.all(want > 0)


def test_fused_analysis_equals_the_stft_then_its_frames() -> None:
    """loss_analysis.stft_analysis (one per-row pass) = loss_kernels.stft, frames_from_stft, analysis_of."""
    from features import loss_analysis as la
    from features.loss import PerceptualLoss

    loss = PerceptualLoss()
    rng = np.random.default_rng(3)
    audio = torch.from_numpy(rng.uniform(-0.5, 0.5, (3, 8000)).astype(np.float32))
    audio[1] = 0.0  # silence: centroids of the floor alone
    size, *geometry = la.shared_stft(loss.plan, loss.settings.fft_sizes, 8000)  # type: ignore[misc]
    window = getattr(loss, f"window_{loss.settings.fft_sizes[size]}")
    fused = la.stft_analysis(audio, window, loss.plan, loss._constants(), tuple(geometry))  # type: ignore[arg-type]
    spec = torch.empty_like(fused.spectra[0])
    loss_kernels.stft(audio.numpy(), window.numpy(), spec.numpy())
    fr, mel_power, kms = la.frames_from_stft(audio, spec, loss.plan, loss._constants(), tuple(geometry))  # type: ignore[arg-type]
    apart = la.analysis_of(fr, (spec,), mel_power, kms)
    assert torch.equal(fused.spectra[0], spec)
    assert torch.equal(fused.frames.power, apart.frames.power) and torch.equal(fused.frames.frames, apart.frames.frames)
    for name in ("mel_power", "loudness_lufs", "centroid_hz", "clip_centroid_hz"):
        assert torch.equal(getattr(fused, name), getattr(apart, name)), name


def test_fused_target_spectra_equal_magnitude_and_log_of_the_power() -> None:
    """loss_analysis.target_spectra: exactly `magnitude` and `log_power` of the STFT's power (what the
    renders are compared with bit for bit), the energy to float32 rounding; from a given spectrum too."""
    from features import loss_analysis as la
    from features.loss import PerceptualLoss

    loss = PerceptualLoss()
    rng = np.random.default_rng(4)
    audio = torch.from_numpy(rng.uniform(-0.5, 0.5, (2, 8000)).astype(np.float32))
    audio[1, 4000:] = 0.0
    windows = tuple(getattr(loss, f"window_{size}") for size in loss.settings.fft_sizes)
    with torch.no_grad():
        given = loss._stft(audio, loss.settings.fft_sizes[1])
        mags, logs, energies = la.target_spectra(audio, (None, given, None), windows)
        for i, size in enumerate(loss.settings.fft_sizes):
            power = la.power(loss._stft(audio, size))
            assert torch.equal(mags[i], la.magnitude(power, True)), size
            assert torch.equal(logs[i], la.log_power(power, True)), size
            torch.testing.assert_close(energies[i], power.sum((-1, -2)), rtol=1e-6, atol=0.0)
