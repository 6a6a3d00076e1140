"""The three faces (batched torch, streaming numpy, files) agree; 48 kHz live values match 16 kHz training values.

Tolerances: same rate, same frames -> float32 precision (rtol 1e-3, atol 0.01 in each unit);
48 kHz stream vs 16 kHz batch of the same (band-limited) sound, and a 44.1 kHz stereo 24-bit file
of it vs the 16 kHz signal -> `CROSS_RATE` below: loudness / RMS 0.05 dB, centroid / spread /
rolloff 1 %, MFCC 0.5 dB, chroma 1e-3, pitch 5 cents on voiced frames, sample peak 1 dB (flatness
0.5 dB; for the file that went through two resamplers, flatness 2 dB and MFCC 1 dB).
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly

from features import batch, offline
from features.audio_io import resample
from features.config import FeatureSettings
from features.dsp import plan_for
from features.names import INDEX
from features.stream import StreamingDescriptors
from features.stream_resample import StreamResampler
from tests.features.signals import phrase, phrase_pair

S = FeatureSettings()


def _batch(x: np.ndarray, sr: int) -> np.ndarray:
    return batch.describe_batch(torch.tensor(x, dtype=torch.float32)[None], sr, S)[0].numpy().astype(np.float64)


def _stream(x: np.ndarray, sr: int, block: int) -> np.ndarray:
    st = StreamingDescriptors(S, sr, block)
    return np.stack([st.process(x[i * block : (i + 1) * block]).astype(np.float64) for i in range(len(x) // block)])


@pytest.mark.parametrize("rate", [16000, 22050, 44100])  # 22050: an odd window (1411 frames)
def test_stream_reproduces_batch_frame_by_frame_at_the_analysis_rate(rate: int) -> None:
    native = plan_for(rate, S)  # the settings' window and hop in seconds, at `rate`
    s_rate = replace(S, sample_rate_hz=rate, window_length=native.window, hop_length=native.hop)  # no resampling
    x = phrase(rate, 1.0)
    b = batch.describe_batch(torch.tensor(x, dtype=torch.float32)[None], rate, s_rate)[0].numpy()
    st = StreamingDescriptors(s_rate, rate, plan_for(rate, s_rate).hop)
    hop = st.block_size
    s = np.stack([st.process(x[i * hop : (i + 1) * hop]).astype(np.float64) for i in range(len(x) // hop)])
    assert b.shape == s.shape
    np.testing.assert_allclose(s, b, rtol=1e-3, atol=0.01)


@pytest.mark.parametrize(("rate", "block"), [(48000, 512), (44100, 512), (22050, 256), (8000, 128)])
def test_stream_at_another_rate_analyses_the_resample_poly_signal(rate: int, block: int) -> None:
    """Input at the device rate is resampled to the analysis rate (scipy's `resample_poly`): after every
    block the descriptors are those of a 16 kHz analyser fed the resampled samples available so far."""
    x = phrase(rate, 1.0)
    ratio = Fraction(S.sample_rate_hz, rate)
    up, down = ratio.numerator, ratio.denominator
    half_len = 10 * max(up, down)
    y = resample_poly(x, up, down)
    device, analysis = StreamingDescriptors(S, rate, block), StreamingDescriptors(S, S.sample_rate_hz, block)
    fed = 0
    for k in range(1, len(x) // block + 1):
        got = device.process(x[(k - 1) * block : k * block])
        ready = max(0, -(-(k * block * up - half_len) // down))  # outputs m with m*down + half_len < k*block*up
        want = analysis.process(y[fed:ready])
        fed = ready
        if want[INDEX["pitch_confidence"]] < 0.1:  # unvoiced: the pitch is the argmin of noise, rounding decides
            got[INDEX["pitch_hz"]] = want[INDEX["pitch_hz"]]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"block {k}")
    assert fed > 0.95 * len(y)


# cross-rate tolerances, descriptor -> (atol, rtol); sample peaks depend on where the samples fall
CROSS_RATE = {
    "loudness_db": (0.05, 0),
    "rms_db": (0.05, 0),
    "peak_db": (1.0, 0),
    "centroid": (0, 0.01),
    "spread": (0, 0.01),
    "rolloff": (0, 0.01),
    "skewness": (0.02, 0.01),
    "kurtosis": (0.05, 0.01),
    "flatness": (0.5, 0),
    "crest": (0.1, 0),
    **{f"mfcc_{i}": (0.5, 0) for i in range(13)},
    **{name: (1e-3, 0) for name in INDEX if name.startswith("chroma_")},
}


def _close_across_rates(a: np.ndarray, b: np.ndarray, looser: dict[str, tuple[float, float]] | None = None) -> None:
    for name, (atol, rtol) in (CROSS_RATE | (looser or {})).items():
        np.testing.assert_allclose(a[:, INDEX[name]], b[:, INDEX[name]], atol=atol, rtol=rtol, err_msg=name)
    voiced = (a[:, INDEX["pitch_confidence"]] > 0.9) & (b[:, INDEX["pitch_confidence"]] > 0.9)
    assert voiced.sum() > len(a) // 2
    cents = 1200 * np.abs(np.log2(a[voiced, INDEX["pitch_hz"]] / b[voiced, INDEX["pitch_hz"]]))
    assert np.max(cents) < 5
    conf = INDEX["pitch_confidence"]
    assert np.max(np.abs(a[:, conf] - b[:, conf])) < 0.05


def test_48k_stream_gives_the_values_of_16k_batch() -> None:
    x16, x48 = phrase_pair(1.0)  # the same continuous signal at both rates
    b = _batch(x16, 16000)
    # the stream resamples to 16 kHz with a 30-frame look-ahead; skipping those frames aligns its windows
    # with the batch frames (the hop at 48 kHz is 3 x 512 frames)
    look_ahead = StreamResampler(48000, 16000, 1.0).half_len
    s = _stream(x48[look_ahead:], 48000, 3 * S.hop_length)
    n = min(len(b), len(s))
    # x16 takes every third sample, so the noise burst's residue above 8 kHz (-40 dB) aliases into it; the
    # stream low-passes first: MFCC moves up to ~0.6 dB on the burst (as in the file test below)
    _close_across_rates(s[1:n], b[1:n], looser={f"mfcc_{i}": (1.0, 0) for i in range(13)})


def test_file_of_another_rate_depth_and_channels_matches(tmp_path: Path) -> None:
    x16, x48 = phrase_pair(1.0)
    x44 = resample(x48, 48000, 44100).astype(np.float64)
    path = tmp_path / "phrase.wav"
    sf.write(path, np.stack([x44, x44], axis=1), 44100, subtype="PCM_24")
    times, values, info = offline.describe_file(path, S)
    assert info.sample_rate_hz == 44100 and info.channels == 2
    b = _batch(x16, 16000)
    assert values.shape == b.shape and values.dtype == np.float32
    np.testing.assert_allclose(times, np.arange(len(b)) * 512 / 16000)
    # two resamplers (48 -> 44.1 -> 16 kHz) touch the quiet top band: flatness (which weighs it) moves up
    # to ~1.6 dB, MFCC up to ~0.6 dB on the noise burst
    looser = {"flatness": (2.0, 0)} | {f"mfcc_{i}": (1.0, 0) for i in range(13)}
    _close_across_rates(values[1:].astype(np.float64), b[1:], looser=looser)


def test_offline_chunks_give_the_frames_of_one_pass(monkeypatch) -> None:
    x = phrase(16000, 1.0)
    monkeypatch.setattr(offline, "CHUNK_FRAMES", 5)
    _, chunked = offline.describe_audio(x, S)
    np.testing.assert_allclose(chunked, _batch(x, 16000), rtol=1e-4, atol=1e-3)
