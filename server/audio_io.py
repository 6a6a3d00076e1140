"""Where audio comes from and goes to: devices (sounddevice), files, and the recorder.

Input: `--input default | <device name or index> | FILE | osc` (`parse_input`), the two callbacks
of `server.callbacks`.
Output: a running clock that calls those callbacks once per block:
- `DeviceAudio`: sounddevice InputStream / OutputStream (imported lazily, so file and OSC modes
  work without PortAudio). A supervisor thread notices a stream that stopped or stalled, reports
  it once, and reopens the device every `retry_s` until it is back (OSC keeps running meanwhile).
- `FileSource`: a file streamed block by block through the same input callback, at real-time pace
  or, with `fast`, as fast as the worker goes (it waits for each block: nothing is dropped, and the
  run is deterministic); it also clocks the output callback when no output device is used.
- `Recorder`: drains the output callback's ring buffer into a WAV file on its own thread.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from server import rt_kernel as rt
from server import rt_thread
from server.callbacks import NO_STATUS, InputCallback, OutputCallback
from server.ring_buffer import RingBuffer
from server.stats import LiveStats

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64", ".opus")
DeviceSpec = int | str | None  # None: the system default
CLOSE_TIMEOUT_S = 1.0  # how long stopping waits for PortAudio to close a stream
RECORDER_POLL_S = 0.05  # the recorder drains its ring this often (the ring holds seconds)


@dataclass(frozen=True)
class InputSpec:
    kind: str  # "device" | "file" | "osc"
    device: DeviceSpec = None
    path: Path | None = None


def parse_device(text: str) -> DeviceSpec:
    """`default` -> None, `3` -> 3, anything else a device name (sounddevice matches substrings)."""
    text = text.strip()
    if text in ("", "default"):
        return None
    return int(text) if text.isdigit() else text


def parse_input(text: str) -> InputSpec:
    """Classify `--input`. A path that looks like an audio file but is missing is an error naming it."""
    if text == "osc":
        return InputSpec("osc")
    path = Path(text)
    if path.is_file():
        return InputSpec("file", path=path)
    if path.suffix.lower() in AUDIO_SUFFIXES or "/" in text:
        raise ValueError(f"--input {text}: file not found")
    return InputSpec("device", device=parse_device(text))


def import_sounddevice() -> Any:
    """`import sounddevice` with a clear one-line error when PortAudio is missing."""
    try:
        import sounddevice
    except OSError as exc:
        raise RuntimeError(
            f"audio devices need PortAudio ({exc}); install libportaudio2, or use --input FILE / --input osc"
        ) from None
    return sounddevice


class FileSource:
    """Plays `audio` (mono float32) block by block into `input_cb` (and clocks `output_cb` if given)."""

    def __init__(
        self,
        audio: np.ndarray,
        sample_rate_hz: int,
        block_size: int,
        input_cb: InputCallback,
        *,
        fast: bool,
        output_cb: OutputCallback | None = None,
        wait_processed: Callable[[int, float], bool] | None = None,
        wake_worker: Callable[[], None] | None = None,
    ) -> None:
        if fast and wait_processed is None:
            raise ValueError("fast file streaming needs the worker's wait_processed")
        self.audio = np.asarray(audio, dtype=np.float32)
        self.block_size = int(block_size)
        self.block_s = block_size / float(sample_rate_hz)
        self.input_cb = input_cb
        self.output_cb = output_cb
        self.fast = fast
        self.wait_processed = wait_processed
        self.wake_worker = wake_worker  # fast mode only: the worker would otherwise sleep until a block is due
        self.n_blocks = max(1, math.ceil(len(self.audio) / self.block_size))
        self.blocks_sent = 0
        self.late_blocks = 0  # real-time pace: blocks that started more than one block late
        self.done = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="file-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def _run(self) -> None:
        try:
            self._play()
        finally:
            self.done.set()

    def _play(self) -> None:
        indata = np.zeros((self.block_size, 1), dtype=np.float32)
        outdata = np.zeros((self.block_size, 1), dtype=np.float32)
        deadline = time.perf_counter()
        for b in range(self.n_blocks):
            if self._stop:
                return
            chunk = self.audio[b * self.block_size : (b + 1) * self.block_size]
            indata[: len(chunk), 0] = chunk
            indata[len(chunk) :, 0] = 0.0
            self.input_cb(indata, self.block_size, None, NO_STATUS)
            self.blocks_sent = b + 1
            if self.fast and self.wake_worker is not None:
                self.wake_worker()
            if self.fast and self.wait_processed is not None and not self.wait_processed(b + 1, 10.0):
                log.error("file input: the worker stopped or stalled at block %d", b + 1)
                return
            if self.output_cb is not None:
                self.output_cb(outdata, self.block_size, None, NO_STATUS)
            if not self.fast:
                deadline += self.block_s
                delay = deadline - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -self.block_s:
                    self.late_blocks += 1
                    deadline = time.perf_counter()


class DeviceAudio:
    """sounddevice streams for the input and/or output callbacks, supervised and reopened on failure."""

    def __init__(
        self,
        *,
        sample_rate_hz: int,
        block_size: int,
        stats: LiveStats,
        input_cb: InputCallback | None = None,
        input_device: DeviceSpec = None,
        input_channels: int = 1,
        output_cb: OutputCallback | None = None,
        output_device: DeviceSpec = None,
        retry_s: float = 2.0,
        stall_s: float = 1.0,
        callback_priority: int = 0,
        sd: Any = None,
    ) -> None:
        if input_cb is None and output_cb is None:
            raise ValueError("DeviceAudio needs an input or an output callback")
        self.sample_rate_hz = int(sample_rate_hz)
        self.block_size = int(block_size)
        self.stats = stats
        self.input_cb = input_cb
        self.input_device = input_device
        self.input_channels = int(input_channels)
        self.output_cb = output_cb
        self.output_device = output_device
        self.retry_s = retry_s
        self.stall_s = max(stall_s, 20 * block_size / sample_rate_hz)
        self._sd = sd
        self.callback_priority = int(callback_priority)  # SCHED_FIFO for the compiled callbacks' threads; 0: off
        self._compiled: list[InputCallback | OutputCallback] = []  # the callbacks PortAudio calls compiled
        self._threads_seen: set[int] = set()
        self.realtime_threads = 0  # callback threads found or made real-time (`rt_thread`)
        self._streams: list[Any] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.healthy = False
        self.abandoned = False  # a stream could not be closed (see `_close`)

    def start(self) -> None:
        """Open the streams (errors here are raised: a wrong device name stops the server) and supervise."""
        if self._sd is None:
            self._sd = import_sounddevice()
        self._open()
        self._thread = threading.Thread(target=self._supervise, name="audio-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(CLOSE_TIMEOUT_S)
            self._thread = None
        self._close()

    def _open(self) -> None:
        sd = self._sd
        streams = []
        self._compiled, self._threads_seen = [], set()
        try:
            if self.input_cb is not None:
                streams.append(self._stream(sd, "input", self.input_cb, self.input_device, self.input_channels))
            if self.output_cb is not None:
                streams.append(self._stream(sd, "output", self.output_cb, self.output_device, 1))
            for stream in streams:
                stream.start()
        except Exception as exc:  # PortAudioError, ValueError (no such device): close what opened
            for stream in streams:
                _close_quietly(stream)
            hint = (
                " (no sound card? --output-device none records the synth without playing it)"
                if (self.output_cb is not None and self.input_cb is None)
                else ""
            )
            message = _one_line(exc)
            if "device -1" in message:  # PortAudio's way of saying there is no default device
                message = f"PortAudio found no default device ({message}); name one with --input / --output-device"
            raise RuntimeError(f"audio device: {message}{hint}") from None
        self._streams = streams
        now = rt.monotonic_ns()
        for cb in (self.input_cb, self.output_cb):
            if cb is not None:
                cb.counters.last_call_ns = now
        self.healthy = True

    def _stream(self, sd: Any, kind: str, cb: InputCallback | OutputCallback, device: DeviceSpec, channels: int) -> Any:
        """A stream whose callback PortAudio calls as compiled code (`cb.c_callback`: no Python, no GIL),
        through sounddevice's base class for custom streams; a Python callback stream where the callback
        has no compiled form (an output voice that is not a `StreamingVoice`) or `sd` lacks that class."""
        settings: dict[str, Any] = {
            "device": device, "channels": channels, "samplerate": self.sample_rate_hz,
            "blocksize": self.block_size, "dtype": "float32",
        }  # fmt: skip
        compiled = cb.c_callback(channels) if hasattr(sd, "_StreamBase") else None
        if compiled is not None:
            self._compiled.append(cb)
            function, userdata = compiled
            return sd._StreamBase(
                kind=kind, callback=function, userdata=sd._ffi.cast("void *", userdata), wrap_callback=None, **settings
            )
        return (sd.InputStream if kind == "input" else sd.OutputStream)(callback=cb, **settings)

    def _close(self) -> None:
        """Close the streams on a helper thread: PortAudio can hang closing a stream whose server died
        (JACK killed); such streams are abandoned (`abandoned`), and the process exits without
        PortAudio's own exit hook (see live_server.py)."""
        streams, self._streams = self._streams, []
        if not streams:
            return
        closer = threading.Thread(target=lambda: [_close_quietly(s) for s in streams], name="audio-close", daemon=True)
        closer.start()
        closer.join(CLOSE_TIMEOUT_S)
        if closer.is_alive() and not self.abandoned:
            self.abandoned = True
            log.warning("a lost audio stream could not be closed; it is abandoned")

    def _problem(self) -> str:
        """'' while every stream runs and calls back; otherwise what is wrong."""
        for stream in self._streams:
            if not stream.active:
                return "stream stopped"
        now = rt.monotonic_ns()
        for name, cb in (("input", self.input_cb), ("output", self.output_cb)):
            if cb is not None and (now - cb.counters.last_call_ns) * 1e-9 > self.stall_s:
                return f"no {name} callback for {self.stall_s:.1f} s"
        return ""

    def _raise_priority(self) -> None:
        """SCHED_FIFO for each new thread a compiled callback runs on (alive: it called within 0.5 s; this
        thread alone closes streams). Refusal is reported once, at info level (the server runs anyway)."""
        now = rt.monotonic_ns()
        for cb in self._compiled:
            thread = cb.counters.thread
            if thread == 0 or thread in self._threads_seen or now - cb.counters.last_call_ns > 500_000_000:
                continue
            self._threads_seen.add(thread)
            why = rt_thread.promote(thread, self.callback_priority)
            if why:
                log.info("the audio callbacks keep their thread's priority: %s", why)
            else:
                self.realtime_threads += 1

    def _supervise(self) -> None:
        while not self._stop.wait(0.1):
            if self.callback_priority > 0 and self.healthy:
                self._raise_priority()
            problem = self._problem()
            if not problem:
                continue
            self.healthy = False
            self.stats.device_errors += 1
            log.warning("audio device lost (%s); OSC stays up, retrying every %.1f s", problem, self.retry_s)
            self._close()
            while not self._stop.wait(self.retry_s):
                try:
                    self._reinitialize()
                    self._open()
                except RuntimeError:  # still gone: try again later (already reported once)
                    continue
                self.stats.device_restarts += 1
                log.warning("audio device back after %d attempt(s)", self.stats.device_restarts)
                break

    def _reinitialize(self) -> None:
        """PortAudio scans devices once: terminate and initialize again so a returning device is found."""
        terminate, initialize = getattr(self._sd, "_terminate", None), getattr(self._sd, "_initialize", None)
        if terminate is None or initialize is None or self.abandoned:  # terminating would wait on the lost stream
            return
        try:
            terminate()
            initialize()
        except Exception as exc:  # PortAudioError: the next _open reports it
            raise RuntimeError(f"audio device: {_one_line(exc)}") from None


class Recorder:
    """Writes the synth's output (a ring buffer of mono frames) to a WAV file on a background thread."""

    def __init__(self, path: str | Path, sample_rate_hz: int, ring: RingBuffer, chunk_frames: int = 4096) -> None:
        import soundfile

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._file = soundfile.SoundFile(
                str(self.path), mode="w", samplerate=int(sample_rate_hz), channels=1, subtype="FLOAT"
            )
        except (RuntimeError, OSError) as exc:
            raise ValueError(f"--record {self.path}: cannot write ({_one_line(exc)})") from None
        self.ring = ring
        self.frames_written = 0
        self._chunk = np.zeros(chunk_frames, dtype=np.float32)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _drain(self) -> None:
        while self.ring.read_into(self._chunk):
            self._file.write(self._chunk)
            self.frames_written += len(self._chunk)

    def _run(self) -> None:
        while not self._stop:
            self._drain()
            time.sleep(RECORDER_POLL_S)

    def stop(self) -> None:
        self._stop = True
        self._thread.join(5.0)
        self._drain()
        rest = self.ring.available_frames
        if rest:
            tail = np.zeros(rest, dtype=np.float32)
            self.ring.read_into(tail)
            self._file.write(tail)
            self.frames_written += rest
        self._file.close()


def _close_quietly(stream: Any) -> None:
    try:
        stream.abort()
        stream.close()
    except Exception as exc:  # a stream of a vanished device may fail to close: nothing else to do
        log.debug("closing an audio stream failed: %s", exc)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
