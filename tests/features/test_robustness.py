"""Silence, DC, clipping, NaN/Inf and extreme input give defined, bounded values in both faces; gradients are finite."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from features import batch
from features.config import FeatureSettings
from features.names import INDEX, N_DESCRIPTORS
from features.stream import StreamingDescriptors
from tests.features.signals import harmonic

SR = 16000
S = FeatureSettings()
N = 8000


def _inputs() -> dict[str, np.ndarray]:
    t = np.arange(N) / SR
    nan = harmonic(220.0, N / SR, SR)
    nan[::7] = np.nan
    inf = harmonic(220.0, N / SR, SR)
    inf[::11] = np.inf
    inf[5::11] = -np.inf
    return {
        "silence": np.zeros(N),
        "dc": np.full(N, 0.7),
        "negative_dc": np.full(N, -1.0),
        "clipped": np.clip(10 * np.sin(2 * np.pi * 300 * t), -1, 1),
        "nan": nan,
        "inf": inf,
        "all_nan": np.full(N, np.nan),
        "huge": 1e30 * np.sin(2 * np.pi * 300 * t),
        "tiny": 1e-12 * np.sin(2 * np.pi * 300 * t),
        "impulse": np.eye(1, N, 4000)[0],
    }


def _check_bounds(d: np.ndarray, what: str) -> None:
    assert d.shape[-1] == N_DESCRIPTORS
    assert np.all(np.isfinite(d)), what
    col = {name: d[:, i] for name, i in INDEX.items()}
    for name in ("loudness_db", "rms_db", "peak_db"):
        assert np.all(col[name] >= S.silence_db - 1e-3) and np.all(col[name] <= 70), (what, name)
    for name in ("centroid", "spread", "rolloff"):
        assert np.all(col[name] >= 0) and np.all(col[name] <= S.max_freq_hz + 1), (what, name)
    assert np.all(col["flatness"] <= 1e-3) and np.all(col["flatness"] >= -200), what
    assert np.all(col["crest"] >= -1e-3) and np.all(col["crest"] <= 200), what
    assert np.all(col["kurtosis"] >= 0) and np.all(np.abs(col["skewness"]) < 1e3), what
    chroma = d[:, INDEX["chroma_A"] : INDEX["chroma_G#"] + 1]
    assert np.all(chroma >= 0) and np.all(chroma <= 1 + 1e-6), what
    assert np.all(col["pitch_confidence"] >= 0) and np.all(col["pitch_confidence"] <= 1), what
    assert np.all((col["pitch_hz"] == 0) | ((col["pitch_hz"] > 40) & (col["pitch_hz"] < 2200))), what


@pytest.mark.parametrize("name", list(_inputs()))
def test_defined_bounded_values_in_both_faces(name: str) -> None:
    x = _inputs()[name]
    b = batch.describe_batch(torch.tensor(x, dtype=torch.float32)[None], SR, S)[0].numpy()
    _check_bounds(b, f"batch {name}")
    st = StreamingDescriptors(S, SR, 512)
    s = np.stack([st.process(x[i : i + 512]).copy() for i in range(0, N, 512)])
    _check_bounds(s, f"stream {name}")


def test_silence_and_dc_values_are_the_floor() -> None:
    for x in (np.zeros(N), np.full(N, 0.5)):
        d = batch.describe_batch(torch.tensor(x, dtype=torch.float32)[None], SR, S)[0].numpy()
        steady = d[1:]  # frame 0 of DC holds the step from the zero history: an onset, not silence
        assert np.all(steady[:, INDEX["pitch_hz"]] == 0) and np.all(steady[:, INDEX["pitch_confidence"]] == 0)
    d = batch.describe_batch(torch.zeros(1, N), SR, S)[0].numpy()
    for name in ("loudness_db", "rms_db", "peak_db"):
        np.testing.assert_allclose(d[:, INDEX[name]], S.silence_db, atol=1e-3)
    assert np.all(d[:, INDEX["chroma_A"] : INDEX["chroma_G#"] + 1] == 0)
    np.testing.assert_allclose(d[:, INDEX["flatness"]], 0.0, atol=1e-3)  # a flat floor


def test_gradients_are_finite_even_on_silence() -> None:
    x = torch.tensor(np.stack([harmonic(220.0, N / SR, SR), np.zeros(N)]), dtype=torch.float32, requires_grad=True)
    d = batch.describe_batch(x, SR, S, names=["loudness_db", "centroid", "flatness", "mfcc", "chroma"])
    d.sum().backward()
    assert x.grad is not None and torch.all(torch.isfinite(x.grad))
    assert x.grad[0].abs().sum() > 0


def test_subset_columns_equal_the_full_set() -> None:
    x = torch.tensor(harmonic(330.0, N / SR, SR), dtype=torch.float32)[None]
    full = batch.describe_batch(x, SR, S)
    sub = batch.describe_batch(x, SR, S, names=["pitch_hz", "loudness", "mfcc_3"])
    cols = [INDEX[n] for n in ("loudness_db", "rms_db", "peak_db", "mfcc_3", "pitch_hz")]
    torch.testing.assert_close(sub, full[..., cols])


def test_short_and_odd_inputs() -> None:
    d = batch.describe_batch(torch.randn(3, 100), SR, S)
    assert d.shape == (3, 1, N_DESCRIPTORS) and torch.all(torch.isfinite(d))
    with pytest.raises(ValueError, match=r"shape \[B, N\]"):
        batch.describe_batch(torch.zeros(2, 3, 4), SR, S)
    with pytest.raises(TypeError, match="floating point"):
        batch.describe_batch(torch.zeros(2, 100, dtype=torch.int64), SR, S)


def test_deltas() -> None:
    x = torch.arange(12.0).reshape(1, 4, 3) ** 2
    d = batch.deltas(x)
    assert torch.all(d[:, 0] == 0)
    torch.testing.assert_close(d[:, 1:], x[:, 1:] - x[:, :-1])


def test_cached_constants_made_in_inference_mode_still_serve_autograd() -> None:
    x = torch.tensor(harmonic(220.0, 0.1, SR), dtype=torch.float64)[None]
    with torch.inference_mode():
        batch.describe_batch(x, SR, S)  # the first float64 call fills the constants cache
    y = x.clone().requires_grad_(True)
    batch.describe_batch(y, SR, S, names=["centroid"]).sum().backward()
    assert y.grad is not None and torch.all(torch.isfinite(y.grad))


def test_row_chunks_give_the_values_of_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.tensor(np.stack([harmonic(100.0 + 50 * i, N / SR, SR) for i in range(5)]), dtype=torch.float32)
    whole = batch.describe_batch(x, SR, S)
    monkeypatch.setattr(batch, "CHUNK_FRAMES", 30)  # two rows of 15 frames per chunk
    assert len(batch.row_chunks(5, 15)) == 3
    torch.testing.assert_close(batch.describe_batch(x, SR, S), whole)


def test_gain_moves_only_the_levels() -> None:
    x = harmonic(330.0, N / SR, SR, amp=0.5) + 0.05 * np.random.default_rng(1).standard_normal(N)  # bands above floor
    loud = batch.describe_batch(torch.tensor(x, dtype=torch.float32)[None], SR, S)[0, 1:].numpy()
    soft = batch.describe_batch(torch.tensor(0.1 * x, dtype=torch.float32)[None], SR, S)[0, 1:].numpy()
    for name in ("loudness_db", "rms_db", "peak_db"):
        np.testing.assert_allclose(soft[:, INDEX[name]] - loud[:, INDEX[name]], -20.0, atol=0.01)
    np.testing.assert_allclose(soft[:, INDEX["mfcc_0"]] - loud[:, INDEX["mfcc_0"]], -20.0 * np.sqrt(S.n_mels), atol=0.5)
    same = ["centroid", "spread", "rolloff", "crest", "pitch_hz", "pitch_confidence", "chroma_E"]
    for name in same:
        np.testing.assert_allclose(soft[:, INDEX[name]], loud[:, INDEX[name]], rtol=2e-3, atol=2e-3, err_msg=name)
    # cepstral shape: only the quietest mel bands feel the -90 dB floor
    np.testing.assert_allclose(soft[:, INDEX["mfcc_1"]], loud[:, INDEX["mfcc_1"]], atol=0.3)
