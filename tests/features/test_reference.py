"""Each descriptor against an independent reference used only here: librosa and pyloudnorm.

Tolerances (stated per test): exact-formula descriptors (mel, MFCC, centroid, flatness, chroma)
agree to float32 precision; rolloff within one FFT bin (FluCoMa interpolates, librosa does not);
pitch within 10 cents of the true f0 and 20 of librosa's YIN; loudness within 0.1 dB (frames) and
0.2 dB (clip) of pyloudnorm's integrated LUFS on stationary clips of 0.8 s.
"""

from __future__ import annotations

import librosa
import numpy as np
import pyloudnorm
import pytest
import torch

from features import batch
from features.config import FeatureSettings
from features.dsp import plan_for
from features.names import INDEX
from tests.features.signals import harmonic, noise, phrase

SR = 16000
S = FeatureSettings()
PLAN = plan_for(SR, S)


def _describe(x: np.ndarray) -> np.ndarray:
    return batch.describe_batch(torch.tensor(x, dtype=torch.float32)[None], SR, S)[0].numpy().astype(np.float64)


def _ref_power(x: np.ndarray) -> np.ndarray:
    """librosa's centred STFT power, rescaled like ours (divided by the window sum), frames [:T]."""
    spec = librosa.stft(x, n_fft=PLAN.window, hop_length=PLAN.hop, window="hann", center=True, pad_mode="constant")
    t = len(x) // PLAN.hop
    return (np.abs(spec[:, :t]) * PLAN.spectrum_scale) ** 2


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    return phrase(SR, 1.5)


def test_log_mel_and_mfcc_match_librosa(signal: np.ndarray) -> None:
    ref_mel = librosa.feature.melspectrogram(
        S=_ref_power(signal), sr=SR, n_mels=S.n_mels, fmax=S.max_freq_hz, norm=None, htk=False
    )
    ref_db = 10 * np.log10(ref_mel + PLAN.floor_power)
    ours = batch.log_mel(torch.tensor(signal, dtype=torch.float32)[None], SR, S)[0].numpy().T
    assert np.max(np.abs(ours - ref_db)) < 0.02  # dB
    ref_mfcc = librosa.feature.mfcc(S=ref_db, n_mfcc=13, dct_type=2, norm="ortho")
    d = _describe(signal)
    ours_mfcc = d[:, INDEX["mfcc_0"] : INDEX["mfcc_12"] + 1].T
    assert np.max(np.abs(ours_mfcc - ref_mfcc)) < 0.1


def test_centroid_rolloff_flatness_match_librosa(signal: np.ndarray) -> None:
    power = _ref_power(signal)
    mag = np.sqrt(power + PLAN.band_floor_amp**2)  # our definition: magnitudes with a -90 dB / n_bins floor
    d = _describe(signal)
    ref_centroid = librosa.feature.spectral_centroid(S=mag, sr=SR, n_fft=PLAN.window)[0]
    np.testing.assert_allclose(d[:, INDEX["centroid"]], ref_centroid, rtol=1e-3)
    ref_rolloff = librosa.feature.spectral_rolloff(S=mag, sr=SR, n_fft=PLAN.window, roll_percent=0.95)[0]
    bin_hz = SR / PLAN.window
    gap = ref_rolloff - d[:, INDEX["rolloff"]]
    assert np.all(gap > -0.05) and np.all(gap < bin_hz + 0.05)  # ours interpolates inside the bin
    ref_flat = 20 * np.log10(librosa.feature.spectral_flatness(S=mag, power=1.0, amin=1e-30)[0])
    np.testing.assert_allclose(d[:, INDEX["flatness"]], ref_flat, atol=0.05)
    # the floor is negligible on real signals: raw magnitudes give the same flatness on noise
    x = noise(0.5, SR)
    raw = np.sqrt(_ref_power(x))
    flat_raw = 20 * np.log10(librosa.feature.spectral_flatness(S=raw, power=1.0, amin=1e-30)[0])
    np.testing.assert_allclose(_describe(x)[:, INDEX["flatness"]], flat_raw, atol=0.05)


def test_spread_skewness_kurtosis_crest_follow_flucoma_formulas(signal: np.ndarray) -> None:
    mag = np.sqrt(_ref_power(signal) + PLAN.band_floor_amp**2)
    f = PLAN.freqs_hz[:, None]
    p = mag / mag.sum(0)
    c = (p * f).sum(0)
    var = (p * (f - c) ** 2).sum(0)
    d = _describe(signal)
    np.testing.assert_allclose(d[:, INDEX["spread"]], np.sqrt(var), rtol=1e-3)
    np.testing.assert_allclose(d[:, INDEX["skewness"]], (p * (f - c) ** 3).sum(0) / var**1.5, rtol=2e-3, atol=1e-3)
    np.testing.assert_allclose(d[:, INDEX["kurtosis"]], (p * (f - c) ** 4).sum(0) / var**2, rtol=2e-3)
    np.testing.assert_allclose(d[:, INDEX["crest"]], 20 * np.log10(mag.max(0) / mag.mean(0)), atol=0.01)


def test_chroma_matches_librosa(signal: np.ndarray) -> None:
    ref = librosa.feature.chroma_stft(S=_ref_power(signal), sr=SR, n_fft=PLAN.window, tuning=0.0, base_c=False)
    ours = _describe(signal)[:, INDEX["chroma_A"] : INDEX["chroma_G#"] + 1].T
    assert np.max(np.abs(ours - ref)) < 1e-3


@pytest.mark.parametrize("f0_hz", [55.0, 110.0, 196.0, 440.0, 880.0, 1500.0])
def test_pitch_within_20_cents_of_truth_and_librosa_yin(f0_hz: float) -> None:
    x = harmonic(f0_hz, 0.5, SR)
    d = _describe(x)[2:-1]
    cents = 1200 * np.abs(np.log2(d[:, INDEX["pitch_hz"]] / f0_hz))
    assert np.max(cents) < 10  # measured <= 6.4 cents (880 Hz), the issue asks for 20
    assert np.min(d[:, INDEX["pitch_confidence"]]) > 0.9
    ref = librosa.yin(
        x, fmin=S.pitch_fmin_hz, fmax=S.pitch_fmax_hz, sr=SR, frame_length=PLAN.window, hop_length=PLAN.hop
    )
    ref_cents = 1200 * np.abs(np.log2(np.median(d[:, INDEX["pitch_hz"]]) / np.median(ref[2:-2])))
    assert ref_cents < 20


def test_noise_has_low_pitch_confidence() -> None:
    d = _describe(noise(0.5, SR))
    assert np.mean(d[:, INDEX["pitch_confidence"]]) < 0.5


@pytest.mark.parametrize(
    "kind",
    ["sine100", "sine1000", "sine5000", "noise", "harmonic"],
)
def test_clip_loudness_matches_pyloudnorm(kind: str) -> None:
    t = np.arange(int(0.8 * SR)) / SR
    x = {
        "sine100": 0.5 * np.sin(2 * np.pi * 100 * t),
        "sine1000": 0.25 * np.sin(2 * np.pi * 1000 * t),
        "sine5000": 0.1 * np.sin(2 * np.pi * 5000 * t),
        "noise": noise(0.8, SR, amp=0.1),
        "harmonic": harmonic(220.0, 0.8, SR, amp=0.6),
    }[kind]
    ref = pyloudnorm.Meter(SR).integrated_loudness(x)
    ours = float(batch.clip_loudness_db(torch.tensor(x, dtype=torch.float32)[None], SR, S)[0])
    assert ours == pytest.approx(ref, abs=0.2)  # measured -0.09..-0.11 dB: frame 0 holds zero history
    # per-frame momentary-style loudness of a stationary signal sits at the same level
    frames = _describe(x)[1:-1, INDEX["loudness_db"]]
    assert np.median(frames) == pytest.approx(ref, abs=0.1)  # measured within 0.03 dB


def test_rms_and_peak_of_a_sine() -> None:
    t = np.arange(8000) / SR
    d = _describe(0.5 * np.sin(2 * np.pi * 1000 * t))[1:]
    np.testing.assert_allclose(d[:, INDEX["rms_db"]], 20 * np.log10(0.5 / np.sqrt(2)), atol=0.01)
    np.testing.assert_allclose(d[:, INDEX["peak_db"]], 20 * np.log10(0.5), atol=0.01)


def test_mr_stft_resolutions_share_one_scale() -> None:
    t = np.arange(16000) / SR
    x = torch.tensor(np.sin(2 * np.pi * 1000.0 * t), dtype=torch.float32)[None]
    mags = batch.mr_stft_magnitudes(x, (2048, 1024, 512))
    for size, mag in zip((2048, 1024, 512), mags, strict=True):
        assert mag.shape[1] == size // 2 + 1 and mag.shape[2] == 1 + 16000 // (size // 4)
        peak = mag[0, :, 4:-4].amax(0)  # full-scale sine: 0.5 at every resolution (Hann / sum)
        torch.testing.assert_close(peak, torch.full_like(peak, 0.5), atol=0.02, rtol=0)
        ref = np.abs(librosa.stft(x[0].numpy(), n_fft=size, hop_length=size // 4, center=True, pad_mode="constant"))
        np.testing.assert_allclose(mag[0].numpy(), ref / (size / 2), atol=1e-4)
