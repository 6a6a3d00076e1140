"""features.loss_kernels and features.loss_analysis: the fused numba passes agree with numpy / torch references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from features import batch, loss_analysis, loss_kernels
from features.config import FeatureSettings
from features.dsp import plan_for
from features.loss import PerceptualLoss
from tests.features.signals import harmonic, noise

SR = 16000


def _ulps(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.abs(values - reference) / np.spacing(np.abs(reference).astype(np.float32)).astype(np.float64)


def test_kernel_log_is_within_one_ulp_and_exact_at_powers_of_two() -> None:
    rng = np.random.default_rng(0)
    args = np.exp(rng.uniform(np.log(1e-9), np.log(1e4), size=(3, 20_000))).astype(np.float32)
    args[0, :6] = [1e-9, 1.0, 2.0, 0.5, np.sqrt(2.0), 3.0e38]
    out = np.empty_like(args)
    loss_kernels.ln_into(args, out)
    reference = np.log(args.astype(np.float64))
    assert _ulps(out, reference).max() <= 1.0
    assert out[0, 1] == 0.0 and out[0, 2] == np.float32(np.log(2.0)) and out[0, 3] == np.float32(-np.log(2.0))


def _spectra(rows: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((rows, 2 * n)) * 0.1).astype(np.float32) for n in (300, 517, 64)]


def test_stft_distances_match_a_float64_reference_with_gain_and_broadcast() -> None:
    specs = _spectra(4, 1)
    gain = np.array([1.0, 0.5, 2.0, 1.0], np.float32)
    mags, logs = [], []
    for spec in _spectra(1, 2):  # one target row, broadcast over the four renders
        power = spec[:, 0::2] ** 2 + spec[:, 1::2] ** 2
        mags.append(np.sqrt(power + np.float32(1e-12)).astype(np.float32))
        logs.append(np.log(power.astype(np.float64) + 1e-9).astype(np.float32))
    sums = loss_kernels.stft_distances(tuple(specs), gain, tuple(mags), tuple(logs), 1e-12, 1e-9)
    assert sums.shape == (4, 3, 2)
    for r, spec in enumerate(specs):
        power = (spec[:, 0::2].astype(np.float64) ** 2 + spec[:, 1::2].astype(np.float64) ** 2) * gain[:, None]
        squares = ((np.sqrt(power + 1e-12) - mags[r]) ** 2).sum(-1)
        log_l1 = np.abs(np.log(power + 1e-9) - logs[r]).sum(-1)
        np.testing.assert_allclose(sums[:, r, 0], squares, rtol=1e-5)
        np.testing.assert_allclose(sums[:, r, 1], log_l1, rtol=1e-5)


def test_identical_spectra_give_exactly_zero_distance() -> None:
    specs = _spectra(3, 3)
    powers = [spec[:, 0::2] * spec[:, 0::2] + spec[:, 1::2] * spec[:, 1::2] for spec in specs]
    mags = tuple(np.sqrt(p + np.float32(1e-12)) for p in powers)
    logs = []
    for p in powers:
        out = np.empty_like(p)
        loss_kernels.ln_into(p + np.float32(1e-9), out)
        logs.append(out)
    sums = loss_kernels.stft_distances(tuple(specs), np.ones(3, np.float32), mags, tuple(logs), 1e-12, 1e-9)
    assert np.all(sums == 0.0)


def _audio() -> torch.Tensor:
    rows = [harmonic(220.0, 0.5, SR), noise(0.5, SR), np.zeros(8000), harmonic(1500.0, 0.5, SR, amp=0.1)]
    return torch.tensor(np.stack(rows), dtype=torch.float32)


def test_frame_bands_and_centroids_match_the_dense_torch_analysis() -> None:
    loss = PerceptualLoss(sample_rate_hz=SR)
    audio = _audio()
    with torch.no_grad():
        analysis = loss.analyze(audio)
        fr = analysis.frames
        spec = analysis.spectra[1]
        assert torch.equal(fr.power, (spec.real.square() + spec.imag.square())[:, 0:29:2])
        dense = fr.power[..., : fr.plan.n_band] @ fr.const.mel_t
        torch.testing.assert_close(analysis.mel_power, dense, rtol=1e-5, atol=1e-12)
        torch.testing.assert_close(analysis.loudness_lufs, batch.clip_loudness_frames(fr), rtol=1e-5, atol=1e-4)
        mag = batch.band_magnitude(fr)
        frame_hz = 1000.0 * (mag @ fr.const.freqs_khz) / mag.sum(-1)
        torch.testing.assert_close(analysis.centroid_hz, frame_hz, rtol=1e-5, atol=1e-3)
        gain2 = torch.tensor([1.0, 0.25, 4.0, 1.0])
        clip = torch.sqrt(fr.power[..., : fr.plan.n_band].mean(-2) * gain2[:, None] + fr.plan.band_floor_amp**2)
        clip_hz = 1000.0 * (clip @ fr.const.freqs_khz) / clip.sum(-1)
        torch.testing.assert_close(loss_analysis.centroids(fr, gain2)[1], clip_hz, rtol=1e-5, atol=1e-3)


def test_shared_stft_geometry() -> None:
    plan = plan_for(SR, FeatureSettings())
    assert loss_analysis.shared_stft(plan, (2048, 1024, 512), 8000) == (1, 0, 2, 15)
    assert loss_analysis.shared_stft(plan, (2048, 512), 8000) is None  # no 1024-point STFT
    assert loss_analysis.shared_stft(plan_for(48000, FeatureSettings()), (2048, 1024, 512), 24000) is None


def test_sanitize_skips_clean_audio_and_cleans_the_rest() -> None:
    clean = _audio()
    assert loss_analysis.sanitize(clean) is clean
    for bad in (float("nan"), float("inf"), 5000.0):
        dirty = clean.clone()
        dirty[1, 7] = bad
        assert not loss_kernels.is_clean(dirty.numpy(), 1000.0)
        torch.testing.assert_close(loss_analysis.sanitize(dirty), batch.sanitize(dirty))
    wants_grad = clean.clone().requires_grad_(True)
    assert loss_analysis.sanitize(wants_grad) is not wants_grad  # the torch path keeps its graph


@pytest.mark.parametrize("rows", [1, 5])
def test_analysis_rows_slice_every_field(rows: int) -> None:
    loss = PerceptualLoss(sample_rate_hz=SR)
    with torch.no_grad():
        analysis = loss.analyze(_audio())
    part = loss_analysis.analysis_rows(analysis, slice(1, 1 + rows))
    n = min(rows, 3)
    assert part.frames.power.shape[0] == n and part.mel_power.shape[0] == n and part.loudness_lufs.shape[0] == n
    assert all(spec is None or spec.shape[0] == n for spec in part.spectra) and part.spectra[1] is not None
    assert part.centroid_hz is not None and torch.equal(part.centroid_hz, analysis.centroid_hz[1 : 1 + rows])
