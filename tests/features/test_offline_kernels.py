"""features.offline_kernels: the file face's fused kernels give the batched torch face's values, edge cases included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from features import batch, offline, offline_kernels
from features.config import FeatureSettings
from features.dsp import plan_for
from features.names import INDEX
from tests.features.signals import noise, phrase

S = FeatureSettings()


def _batch(x: np.ndarray, sr: int) -> np.ndarray:
    return batch.describe_batch(torch.tensor(x, dtype=torch.float32)[None], sr, S)[0].numpy().astype(np.float64)


def _close(ours: np.ndarray, ref: np.ndarray) -> None:
    ours = ours.astype(np.float64)
    # a frame without periodicity (confidence ~0) has a flat YIN curve: its lag is float rounding, not a pitch
    aperiodic = ref[:, INDEX["pitch_confidence"]] < 0.05
    ours[aperiodic, INDEX["pitch_hz"]] = ref[aperiodic, INDEX["pitch_hz"]]
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("rate", [16000, 22050, 8000])  # 22050: an odd window (1411 frames)
def test_offline_face_matches_the_batched_face(rate: int) -> None:
    x = phrase(rate, 1.2)
    _, values = offline.describe_audio(x, S, sample_rate_hz=rate)
    _close(values, _batch(x, rate))


@pytest.mark.parametrize("n_samples", [1, 100, 511, 512, 700, 1023, 1024, 1500])
def test_short_inputs_read_zeros_outside_the_signal(n_samples: int) -> None:
    x = noise(1.0, 16000, amp=0.3)[:n_samples]
    times, values = offline.describe_audio(x, S)
    ref = _batch(x, 16000)
    assert values.shape == ref.shape and len(times) == len(ref)
    _close(values, ref)


def test_non_finite_and_huge_samples_are_repaired_as_the_batched_face_does() -> None:
    x = phrase(16000, 1.0)
    x[1000], x[5000], x[9000], x[12000] = np.nan, np.inf, -np.inf, 5e3  # 5e3: clamped to MAX_ABS_SAMPLE
    x[14000:14010] = -2e4
    _, values = offline.describe_audio(x, S)
    assert np.all(np.isfinite(values))
    _close(values, _batch(x, 16000))


@pytest.mark.parametrize("chunk_frames", [5, 7])  # 46 frames: a last chunk of 1 frame (a one-row matmul), of 4
def test_chunk_size_cannot_change_a_value(monkeypatch: pytest.MonkeyPatch, chunk_frames: int) -> None:
    x = phrase(16000, 1.5)
    _, whole = offline.describe_audio(x, S)
    assert len(whole) == 46
    monkeypatch.setattr(offline, "CHUNK_FRAMES", chunk_frames)
    _, chunked = offline.describe_audio(x, S)
    np.testing.assert_array_equal(chunked, whole)


def test_silence_gives_the_floors_and_no_pitch() -> None:
    _, values = offline.describe_audio(np.zeros(8000, dtype=np.float32), S)
    ref = _batch(np.zeros(8000), 16000)
    _close(values, ref)
    assert np.all(values[:, INDEX["pitch_hz"]] == 0.0) and np.all(values[:, INDEX["pitch_confidence"]] == 0.0)
    assert np.allclose(values[:, INDEX["rms_db"]], S.silence_db, atol=1e-3)


@pytest.mark.parametrize("window", [1024, 1411, 6])
def test_windowed_power_is_the_hann_spectrum_of_the_raw_frame(window: int) -> None:
    rng = np.random.default_rng(window)
    frame = rng.standard_normal(window) + 0.7  # a DC offset: the mean goes back in through bin 0 and 1
    mean = frame.mean()
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)
    spectrum = np.fft.rfft(frame - mean).astype(np.complex64)
    power = np.empty(window // 2 + 1)
    offline_kernels.windowed_power(spectrum, mean, window, 0.25, power)
    expected = 0.25 * np.abs(np.fft.rfft(frame * hann)) ** 2
    np.testing.assert_allclose(power, expected, rtol=1e-5, atol=1e-4 * expected.max())


@pytest.mark.parametrize("peak_bin", [0, 3, 200, 512])
def test_rolloff_found_block_by_block_is_the_first_bin_reaching_the_target(peak_bin: int) -> None:
    plan = plan_for(16000, S)
    rng = np.random.default_rng(peak_bin)
    power = 1e-8 * rng.random(plan.n_bins)
    power[peak_bin] = 1.0  # nearly all the magnitude in one bin: the rolloff lands there
    mag = np.empty(plan.n_band)
    out = np.zeros(10)
    freqs_khz = plan.freqs_hz / 1000.0
    offline_kernels._spectral_shape(power, plan.n_band, plan.band_floor_amp**2, freqs_khz, 0.95, mag, out)
    m = np.sqrt(power[: plan.n_band] + plan.band_floor_amp**2)
    cum = np.cumsum(m)
    k = int(np.searchsorted(cum, 0.95 * cum[-1]))
    bin_khz = freqs_khz[1] - freqs_khz[0]
    expected = freqs_khz[k] if k == 0 else freqs_khz[k] - bin_khz * (cum[k] - 0.95 * cum[-1]) / m[k]
    assert out[7] == pytest.approx(1000.0 * expected, rel=1e-9)
    centroid = np.sum(m * freqs_khz) / np.sum(m)
    assert out[3] == pytest.approx(1000.0 * centroid, rel=1e-9)
    assert out[9] == pytest.approx(20 * np.log10(m.max() / m.mean()), rel=1e-9)
    assert out[8] == pytest.approx(20 * (np.mean(np.log10(m)) - np.log10(m.mean())), rel=1e-9)
