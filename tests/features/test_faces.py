"""The three faces (batched torch, streaming numpy, files) agree; 48 kHz live values match 16 kHz training values.

Tolerances: same rate, same frames -> float32 precision (rtol 1e-3, atol 0.01 in each unit);
48 kHz stream vs 16 kHz batch of the same sound -> loudness 0.2 dB, centroid/spread/rolloff 5 %,
MFCC 1.5 dB, pitch 10 cents on voiced frames; a 44.1 kHz stereo 24-bit file vs the 16 kHz signal
-> the same, with 10 % on centroid/spread/rolloff (the round trip through two resamplers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from features import batch, offline
from features.audio_io import resample
from features.config import FeatureSettings
from features.dsp import plan_for
from features.names import INDEX
from features.stream import StreamingDescriptors
from tests.features.signals import phrase

S = FeatureSettings()


def _batch(x: np.ndarray, sr: int) -> np.ndarray:
    return batch.describe_batch(torch.tensor(x, dtype=torch.float32)[None], sr, S)[0].numpy().astype(np.float64)


def _stream(x: np.ndarray, sr: int, block: int) -> np.ndarray:
    st = StreamingDescriptors(S, sr, block)
    return np.stack([st.process(x[i * block : (i + 1) * block]).astype(np.float64) for i in range(len(x) // block)])


def test_stream_reproduces_batch_frame_by_frame() -> None:
    x = phrase(16000, 1.0)
    b = _batch(x, 16000)
    s = _stream(x, 16000, plan_for(16000, S).hop)
    assert b.shape == s.shape
    np.testing.assert_allclose(s, b, rtol=1e-3, atol=0.01)


def _close_across_rates(a: np.ndarray, b: np.ndarray, shape_rtol: float = 0.05) -> None:
    voiced = (a[:, INDEX["pitch_confidence"]] > 0.9) & (b[:, INDEX["pitch_confidence"]] > 0.9)
    assert voiced.sum() > len(a) // 2
    assert np.max(np.abs(a[:, INDEX["loudness_db"]] - b[:, INDEX["loudness_db"]])) < 0.2
    for name in ("centroid", "spread", "rolloff"):
        np.testing.assert_allclose(a[:, INDEX[name]], b[:, INDEX[name]], rtol=shape_rtol, err_msg=name)
    mfcc = slice(INDEX["mfcc_0"], INDEX["mfcc_12"] + 1)
    assert np.max(np.abs(a[:, mfcc] - b[:, mfcc])) < 1.5
    cents = 1200 * np.abs(np.log2(a[voiced, INDEX["pitch_hz"]] / b[voiced, INDEX["pitch_hz"]]))
    assert np.max(cents) < 10


def test_48k_stream_gives_the_values_of_16k_batch() -> None:
    x16 = phrase(16000, 1.0)
    x48 = resample(x16, 16000, 48000).astype(np.float64)
    b = _batch(x16, 16000)
    s = _stream(x48, 48000, plan_for(48000, S).hop)
    n = min(len(b), len(s))
    _close_across_rates(s[1:n], b[1:n])


def test_file_of_another_rate_depth_and_channels_matches(tmp_path: Path) -> None:
    x16 = phrase(16000, 1.0)
    x44 = resample(x16, 16000, 44100).astype(np.float64)
    path = tmp_path / "phrase.wav"
    sf.write(path, np.stack([x44, x44], axis=1), 44100, subtype="PCM_24")
    times, values, info = offline.describe_file(path, S)
    assert info.sample_rate_hz == 44100 and info.channels == 2
    b = _batch(x16, 16000)
    assert values.shape == b.shape and values.dtype == np.float32
    np.testing.assert_allclose(times, np.arange(len(b)) * 512 / 16000)
    # two resamplers (16 -> 44.1 -> 16 kHz) dull the top band a little: rolloff moves by up to 7 %
    _close_across_rates(values[1:].astype(np.float64), b[1:], shape_rtol=0.1)


def test_offline_chunks_give_the_frames_of_one_pass(monkeypatch) -> None:
    x = phrase(16000, 1.0)
    monkeypatch.setattr(offline, "CHUNK_FRAMES", 5)
    _, chunked = offline.describe_audio(x, S)
    np.testing.assert_allclose(chunked, _batch(x, 16000), rtol=1e-4, atol=1e-3)
