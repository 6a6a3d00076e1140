"""features.audio_io: any rate / depth / channel count -> mono float32 at the analysis rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from features.audio_io import AudioFileError, load_audio, probe_audio


@pytest.mark.parametrize(
    ("rate", "subtype", "channels", "fmt"),
    [
        (44100, "PCM_16", 2, "WAV"),
        (48000, "PCM_24", 1, "WAV"),
        (22050, "FLOAT", 3, "WAV"),
        (16000, "PCM_16", 1, "FLAC"),
    ],
)
def test_any_rate_depth_and_channels_to_mono_16k(
    tmp_path: Path, rate: int, subtype: str, channels: int, fmt: str
) -> None:
    t = np.arange(int(0.5 * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    data = np.stack([tone * (c + 1) / channels for c in range(channels)], axis=1)
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, data, rate, subtype=subtype, format=fmt)
    audio, info = load_audio(path, 16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert info.sample_rate_hz == rate and info.channels == channels and info.subtype == subtype
    assert info.duration_s == pytest.approx(0.5, abs=1e-3)
    assert len(audio) == 8000
    expected_amp = 0.5 * np.mean([(c + 1) / channels for c in range(channels)])
    mid = audio[1000:7000]
    assert np.max(np.abs(mid)) == pytest.approx(expected_amp, rel=0.01)
    # still a 440 Hz tone after resampling
    spectrum = np.abs(np.fft.rfft(mid * np.hanning(len(mid))))
    assert np.argmax(spectrum) * 16000 / len(mid) == pytest.approx(440.0, abs=16000 / len(mid))
    assert probe_audio(path).frames == len(t)


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="is a directory"):
        load_audio(tmp_path, 16000)
    missing = tmp_path / "nope.wav"
    with pytest.raises(AudioFileError, match="nope.wav: no such audio file"):
        load_audio(missing, 16000)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioFileError, match=r"junk\.wav: not a readable audio file"):
        load_audio(junk, 16000)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1)), 16000)
    with pytest.raises(AudioFileError, match="empty.wav: contains no audio frames"):
        load_audio(empty, 16000)


def test_nan_and_inf_samples_become_finite(tmp_path: Path) -> None:
    data = np.zeros(1600, dtype=np.float32)
    data[10], data[20], data[30] = np.nan, np.inf, -np.inf
    path = tmp_path / "bad.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    audio, _ = load_audio(path, 16000)
    assert np.all(np.isfinite(audio)) and audio[20] == 1.0 and audio[30] == -1.0


def test_resample_keeps_tones_and_length_with_either_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from features.audio_io import resample

    t = np.arange(44100) / 44100
    x = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    outputs = [resample(x, 44100, 16000)]
    monkeypatch.setitem(sys.modules, "soxr", None)  # import soxr -> ImportError: the scipy fallback
    outputs.append(resample(x, 44100, 16000))
    for y in outputs:
        assert y.dtype == np.float32 and len(y) == 16000
        mid = y[2000:14000]
        assert np.max(np.abs(mid)) == pytest.approx(0.5, rel=0.01)
        assert np.argmax(np.abs(np.fft.rfft(mid))) * 16000 / len(mid) == pytest.approx(1000.0, abs=2)
    np.testing.assert_allclose(outputs[0][2000:14000], outputs[1][2000:14000], atol=0.01)


@pytest.mark.parametrize(
    ("fmt", "subtype", "rate", "suffix"),
    [("OGG", "VORBIS", 44100, "ogg"), ("MP3", "MPEG_LAYER_III", 44100, "mp3"), ("AIFF", "PCM_24", 32000, "aiff")],
)
def test_compressed_and_other_containers(tmp_path: Path, fmt: str, subtype: str, rate: int, suffix: str) -> None:
    t = np.arange(rate) / rate
    path = tmp_path / f"tone.{suffix}"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440.0 * t), rate, format=fmt, subtype=subtype)
    audio, info = load_audio(path, 16000)
    assert info.sample_rate_hz == rate and abs(info.duration_s - 1.0) < 0.1  # codecs may pad a little
    mid = audio[2000:14000]
    assert np.argmax(np.abs(np.fft.rfft(mid))) * 16000 / len(mid) == pytest.approx(440.0, abs=2)
    assert np.max(np.abs(mid)) == pytest.approx(0.5, rel=0.1)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT"])
@pytest.mark.parametrize("fmt", ["WAV", "AIFF", "FLAC"])
def test_fast_integer_reads_are_libsndfiles_floats(tmp_path: Path, subtype: str, fmt: str) -> None:
    from features.audio_io import read_float32

    if not sf.check_format(fmt, subtype):
        pytest.skip(f"{fmt} cannot hold {subtype}")
    data = np.random.default_rng(0).uniform(-1.0, 1.0, (20000, 2))
    data[:2] = [[-1.0, 1.0], [0.0, -0.5]]  # the extremes
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, data, 44100, subtype=subtype, format=fmt)
    reference = sf.read(path, dtype="float32", always_2d=True)[0]
    with sf.SoundFile(path) as f:
        head = read_float32(f, 7000)
        rest = read_float32(f, -1)
    assert head.dtype == rest.dtype == np.float32
    np.testing.assert_array_equal(np.concatenate([head, rest]), reference)


@pytest.mark.parametrize("channels", [1, 2, 3, 6])
def test_channel_mean_is_numpys_mean(channels: int) -> None:
    from features.audio_io import _mono

    data = np.random.default_rng(channels).uniform(-1.0, 1.0, (5000, channels)).astype(np.float32)
    data[:100] = np.float32(1.0) - np.float32(2.0**-24) * np.arange(100, dtype=np.float32)[:, None]  # rounding
    mono = _mono(data)
    assert mono.dtype == np.float32
    np.testing.assert_array_equal(mono, data.mean(axis=1))
