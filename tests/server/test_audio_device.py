"""DeviceAudio's supervision with a stand-in for the sounddevice module: a stream that dies is
reported once, the device is retried until it opens again, and input parsing names its culprit."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import pytest

from server.audio_io import DeviceAudio, parse_device, parse_input
from server.callbacks import InputCallback
from server.ring_buffer import RingBuffer
from server.stats import LiveStats

BLOCK = 256


class FakeStream:
    """Calls its callback from a thread every block, like PortAudio; `die()` stops it as a lost device would."""

    def __init__(self, fake_sd: FakeSd, callback: Any, blocksize: int, channels: int, **_: Any) -> None:
        self.fake_sd = fake_sd
        self.callback = callback
        self.blocksize = blocksize
        self.channels = channels
        self.active = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.active = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        data = np.zeros((self.blocksize, self.channels), dtype=np.float32)
        while self.active:
            self.callback(data, self.blocksize, None, _NoFlags())
            time.sleep(0.005)

    def die(self) -> None:
        self.active = False

    def abort(self) -> None:
        self.active = False

    def close(self) -> None:
        self.fake_sd.closed += 1


class _NoFlags:
    input_overflow = input_underflow = output_overflow = output_underflow = False

    def __bool__(self) -> bool:
        return False


class FakeSd:
    def __init__(self) -> None:
        self.streams: list[FakeStream] = []
        self.fail_opens = 0  # the next N opens raise, as a missing device does
        self.closed = 0
        self.reinitialized = 0

    def InputStream(self, **kwargs: Any) -> FakeStream:  # noqa: N802 (sounddevice's name)
        if kwargs.get("device") == "nope":
            raise ValueError("No input device matching 'nope'")
        if self.fail_opens:
            self.fail_opens -= 1
            raise RuntimeError("Error opening InputStream: Device unavailable")
        stream = FakeStream(self, **kwargs)
        self.streams.append(stream)
        return stream

    def _terminate(self) -> None:
        self.reinitialized += 1

    def _initialize(self) -> None:
        return None


def _wait_until(predicate: Any, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_lost_device_is_reported_once_and_reopened(caplog: pytest.LogCaptureFixture) -> None:
    sd = FakeSd()
    stats = LiveStats(48000, BLOCK)
    ring = RingBuffer(1 << 16)
    cb = InputCallback(ring, stats.input)
    audio = DeviceAudio(
        sample_rate_hz=48000, block_size=BLOCK, stats=stats, input_cb=cb, retry_s=0.1, stall_s=0.3, sd=sd
    )
    caplog.set_level(logging.WARNING, logger="server.audio_io")
    audio.start()
    try:
        assert _wait_until(lambda: stats.input.callbacks > 5)
        sd.fail_opens = 3  # the device stays away for three retries
        sd.streams[0].die()
        assert _wait_until(lambda: stats.device_restarts == 1), "the device was not reopened"
        assert stats.device_errors == 1 and len(sd.streams) == 2 and sd.reinitialized >= 4
        before = stats.input.callbacks
        assert _wait_until(lambda: stats.input.callbacks > before + 5), "no callbacks after reopening"
    finally:
        audio.stop()
    lost = [r for r in caplog.records if "audio device lost" in r.getMessage()]
    assert len(lost) == 1  # reported once, not once per retry
    assert not audio.abandoned


def test_a_stalled_stream_counts_as_lost() -> None:
    sd = FakeSd()
    stats = LiveStats(48000, BLOCK)
    cb = InputCallback(RingBuffer(1 << 16), stats.input)
    audio = DeviceAudio(
        sample_rate_hz=48000, block_size=BLOCK, stats=stats, input_cb=cb, retry_s=0.1, stall_s=0.3, sd=sd
    )
    audio.start()
    try:
        assert _wait_until(lambda: stats.input.callbacks > 5)
        sd.streams[0].callback = lambda *args: None  # "active" but no callbacks reach us
        assert _wait_until(lambda: stats.device_errors == 1)
        assert _wait_until(lambda: stats.device_restarts == 1)
    finally:
        audio.stop()


def test_a_wrong_device_name_is_a_clear_error_at_start() -> None:
    stats = LiveStats(48000, BLOCK)
    cb = InputCallback(RingBuffer(4096), stats.input)
    audio = DeviceAudio(
        sample_rate_hz=48000, block_size=BLOCK, stats=stats, input_cb=cb, input_device="nope", sd=FakeSd()
    )
    with pytest.raises(RuntimeError, match="audio device: No input device matching 'nope'"):
        audio.start()


def test_input_spec_parsing(tmp_path: Any) -> None:
    wav = tmp_path / "take.wav"
    wav.write_bytes(b"RIFF")
    assert parse_input(str(wav)).kind == "file"
    assert parse_input("osc").kind == "osc"
    assert parse_input("default").device is None and parse_input("3").device == 3
    assert parse_input("system").device == "system" and parse_device(" default ") is None
    with pytest.raises(ValueError, match="missing.flac: file not found"):
        parse_input(str(tmp_path / "missing.flac"))
