"""features.offline with threads: block decoding + chunked analysis in parallel give the serial values."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from features import audio_io, offline
from features.audio_io import AudioFileError, BlockDecoder, load_audio
from settings import Settings
from tests.features.signals import phrase

S = Settings().features


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many chunks and decode blocks from a few seconds of audio (the values must not depend on them)."""
    monkeypatch.setattr(offline, "PARALLEL_CHUNK_FRAMES", 16)
    monkeypatch.setattr(offline, "CHUNK_FRAMES", 24)
    monkeypatch.setattr(audio_io, "DECODE_BLOCK_FRAMES", 5000)


def _write(path: Path, rate: int, seconds: float, channels: int = 1, subtype: str = "PCM_16") -> Path:
    x = phrase(rate, seconds)
    data = np.stack([x * (0.5 + 0.5 * c / channels) for c in range(channels)], axis=1)
    sf.write(path, data, rate, subtype=subtype)
    return path


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (44100, 2), (44100, 1), (8000, 1)])
@pytest.mark.parametrize("threads", [2, 3])
def test_threaded_file_analysis_equals_the_serial_one(
    tmp_path: Path, small_chunks: None, rate: int, channels: int, threads: int
) -> None:
    path = _write(tmp_path / "x.wav", rate, 3.3, channels)
    times_1, values_1, info_1 = offline.describe_file(path, S, threads=1)
    times_n, values_n, info_n = offline.describe_file(path, S, threads=threads)
    assert len(values_1) >= 90  # > 5 chunks of 16 frames
    assert values_n.dtype == np.float32 and values_n.shape == values_1.shape
    np.testing.assert_array_equal(values_n, values_1)  # every frame is computed alone: chunks cannot matter
    np.testing.assert_array_equal(times_n, times_1)
    assert info_n == info_1 and info_n.sample_rate_hz == rate and info_n.channels == channels
    assert torch.get_num_threads() == 1  # restored (the conftest sets 1)


def test_threaded_audio_analysis_equals_the_serial_one(small_chunks: None) -> None:
    x = phrase(16000, 2.0).astype(np.float32)
    t1, v1 = offline.describe_audio(x, S)
    t2, v2 = offline.describe_audio(x, S, threads=2)
    np.testing.assert_array_equal(v2, v1)
    np.testing.assert_array_equal(t2, t1)


def test_torch_threads_are_one_per_worker_and_restored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = offline._describe_chunk

    def spy(*args: object) -> np.ndarray:
        seen.append(torch.get_num_threads())
        return real(*args)

    monkeypatch.setattr(offline, "_describe_chunk", spy)
    torch.set_num_threads(2)
    path = _write(tmp_path / "x.wav", 16000, 1.0)
    for threads in (2, 1):  # the serial loop too: its small ops would only wait for an OpenMP team
        seen.clear()
        offline.describe_file(path, S, threads=threads)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2


def test_analyzers_are_reused_across_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []
    real = offline._ChunkAnalyzer

    def counting(*args: object) -> object:
        made.append(real(*args))
        return made[-1]

    monkeypatch.setattr(offline, "_ChunkAnalyzer", counting)
    monkeypatch.setattr(offline, "_POOL", {})
    x = phrase(16000, 1.0).astype(np.float32)
    first = offline.describe_audio(x, S)[1]
    for _ in range(3):
        np.testing.assert_array_equal(offline.describe_audio(x, S)[1], first)
    assert len(made) == 1


@pytest.mark.parametrize(
    ("rate", "channels", "subtype", "block_frames"),
    [
        (44100, 2, "PCM_16", 3000),
        (44100, 1, "PCM_16", 257),
        (48000, 3, "FLOAT", 3000),
        (16000, 1, "PCM_24", 3000),
        (22050, 1, "FLOAT", 3000),
        (8000, 2, "PCM_16", 1001),
    ],
)
def test_decoder_blocks_are_the_samples_of_load_audio(
    tmp_path: Path, rate: int, channels: int, subtype: str, block_frames: int
) -> None:
    path = _write(tmp_path / "x.wav", rate, 1.7, channels, subtype)
    audio, info = load_audio(path, 16000)
    decoder = BlockDecoder(path, 16000, block_frames=block_frames)
    blocks = list(decoder)
    assert len(blocks) > 5 and all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), audio)
    assert decoder.info == info
    assert decoder.expected_frames == len(audio)


def test_decoder_repairs_non_finite_samples_and_works_without_soxr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (0.1 * np.sin(np.arange(30000) / 7.0)).astype(np.float32)
    data[10], data[20000], data[25000] = np.nan, np.inf, -np.inf
    path = tmp_path / "bad.wav"
    sf.write(path, data, 44100, subtype="FLOAT")
    audio, _ = load_audio(path, 16000)
    np.testing.assert_array_equal(np.concatenate(list(BlockDecoder(path, 16000, block_frames=4096))), audio)
    assert np.all(np.isfinite(audio))
    native = np.concatenate(list(BlockDecoder(path, None, block_frames=4096)))
    assert native[20000] == 1.0 and native[25000] == -1.0 and native[10] == 0.0
    monkeypatch.setitem(sys.modules, "soxr", None)  # import soxr -> ImportError: resampled once at the end
    scipy_audio, _ = load_audio(path, 16000)
    np.testing.assert_array_equal(np.concatenate(list(BlockDecoder(path, 16000, block_frames=4096))), scipy_audio)


def test_threaded_errors_name_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioFileError, match=r"junk\.wav: not a readable audio file"):
        offline.describe_file(junk, S, threads=2)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1)), 44100)
    with pytest.raises(AudioFileError, match="empty.wav: contains no audio frames"):
        offline.describe_file(empty, S, threads=2)
    with pytest.raises(ValueError, match="threads"):
        offline.describe_file(junk, S, threads=0)
    with pytest.raises(ValueError, match="threads"):
        offline.describe_audio(np.zeros(1000, np.float32), S, threads=0)


def test_a_failing_chunk_is_raised_without_hanging(
    tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = offline._describe_chunk

    def flaky(analyzer: object, audio: np.ndarray, first: int, count: int) -> np.ndarray:
        if first == 32:
            raise RuntimeError("chunk 32 failed")
        return real(analyzer, audio, first, count)

    monkeypatch.setattr(offline, "_describe_chunk", flaky)
    path = _write(tmp_path / "x.wav", 44100, 3.0)
    before = set(threading.enumerate())
    with pytest.raises(RuntimeError, match="chunk 32 failed"):
        offline.describe_file(path, S, threads=3)
    assert not [t for t in threading.enumerate() if t not in before]  # the workers have ended


def test_samples_grow_past_an_underannounced_length_and_keep_earlier_views() -> None:
    samples = offline._Samples(3)
    samples.append(np.arange(2, dtype=np.float32))
    early = samples.wait_for(2)
    samples.append(np.arange(2, 9, dtype=np.float32))
    samples.finish()
    np.testing.assert_array_equal(samples.wait_for(100), np.array([0, 1, 2, 3, 4, 5, 6, 7, 8], np.float32))
    np.testing.assert_array_equal(early, [0, 1])
    assert samples.count == 9


def test_available_cores_follows_the_affinity_mask() -> None:
    cores = offline.available_cores()
    assert cores >= 1
    if hasattr(offline.os, "sched_getaffinity"):
        assert cores == len(offline.os.sched_getaffinity(0))


@pytest.mark.parametrize(("fmt", "subtype", "suffix"), [("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3")])
def test_compressed_files_decode_in_blocks_to_the_same_analysis(
    tmp_path: Path, small_chunks: None, fmt: str, subtype: str, suffix: str
) -> None:
    path = tmp_path / f"x.{suffix}"
    x = phrase(44100, 2.5)
    sf.write(path, np.stack([x, 0.5 * x], axis=1), 44100, format=fmt, subtype=subtype)
    audio, _ = load_audio(path, 16000)
    np.testing.assert_array_equal(np.concatenate(list(BlockDecoder(path, 16000, block_frames=4000))), audio)
    _, serial, info_1 = offline.describe_file(path, S, threads=1)
    _, threaded, info_2 = offline.describe_file(path, S, threads=2)
    np.testing.assert_allclose(threaded, serial, rtol=1e-6, atol=1e-6)
    assert info_1 == info_2


def test_a_waiting_worker_is_woken_only_once_its_samples_are_in() -> None:
    samples = offline._Samples(100)
    wakeups = []
    real_notify = samples._cond.notify_all

    def counting_notify() -> None:
        wakeups.append(samples.count)
        real_notify()

    samples._cond.notify_all = counting_notify  # type: ignore[method-assign]
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.append(samples.wait_for(50).size))
    reader.start()
    while not samples._waiting:  # the reader is blocked in wait_for
        threading.Event().wait(0.001)
    for _ in range(6):
        samples.append(np.ones(10, dtype=np.float32))
    reader.join(timeout=10)
    assert got == [50] or got == [60]  # it ran once 50 were in (60 if the producer was quicker)
    assert wakeups and min(wakeups) == 50  # the appends before it woke nobody


def test_a_worker_thread_runs_its_ffts_alone() -> None:
    x = torch.randn(256, 1024)

    def cpu_of_ffts(setup: bool) -> tuple[float, float]:
        times: list[float] = []

        def job() -> None:
            if setup:
                offline._one_intra_op_thread_here()
            torch.fft.rfft(x)
            process, thread = time.process_time(), time.thread_time()
            for _ in range(100):
                torch.fft.rfft(x)
            times.extend([time.process_time() - process, time.thread_time() - thread])

        worker = threading.Thread(target=job)
        worker.start()
        worker.join()
        return times[0], times[1]

    process, thread = cpu_of_ffts(setup=True)
    assert process < 1.3 * thread + 0.01  # no other thread of the process worked meanwhile
