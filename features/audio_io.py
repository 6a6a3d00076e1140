"""Audio files -> mono float32 at the analysis rate.

Input: a path to any file libsndfile reads (WAV, AIFF, FLAC, OGG/Vorbis, Opus, MP3; any bit depth,
any channel count, any rate).
Output: `load_audio(path, target_sr_hz)` -> (mono float32 `np.ndarray`, `AudioInfo`). Channels are
averaged; the rate is converted by `resample` (libsoxr HQ, or scipy's polyphase FIR without it);
NaN/Inf samples (possible in float files) become 0 / +-1. Every error is an `AudioFileError` whose
one-line message names the file. `BlockDecoder` yields the same samples block by block (libsoxr's
streaming resampler), so analysis can start while the file is still being decoded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly


class AudioFileError(ValueError):
    """A file that cannot be read as audio (the message names the file)."""


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate_hz: int  # the file's own rate
    channels: int
    frames: int  # at the file's rate
    format: str  # e.g. "WAV"
    subtype: str  # e.g. "PCM_16", "FLOAT"
    path: str


def probe_audio(path: str | Path) -> AudioInfo:
    """Read only the header of an audio file."""
    file = Path(path)
    _check_is_file(file)
    try:
        info = sf.info(str(file))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(f"{file}: not a readable audio file ({_reason(exc)})") from exc
    return _info(file, info.samplerate, info.channels, info.frames, info.format, info.subtype)


def load_audio(path: str | Path, target_sr_hz: int | None) -> tuple[np.ndarray, AudioInfo]:
    """Read `path` as mono float32 at `target_sr_hz` (None: keep the file's rate)."""
    file = Path(path)
    _check_is_file(file)
    try:
        with sf.SoundFile(str(file)) as f:
            data = read_float32(f, -1)
            meta = _info(file, f.samplerate, f.channels, data.shape[0], f.format, f.subtype)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(f"{file}: not a readable audio file ({_reason(exc)})") from exc
    if data.shape[0] == 0:
        raise AudioFileError(f"{file}: contains no audio frames")
    mono = _mono(data)
    if target_sr_hz is not None and target_sr_hz != meta.sample_rate_hz:
        mono = resample(mono, meta.sample_rate_hz, target_sr_hz)
    return np.ascontiguousarray(mono, dtype=np.float32), meta


# integer PCM read as integers and scaled by a power of two: the very floats libsndfile's own conversion
# gives (int -> float, then an exact scaling), ~3x faster
_INTEGER_READS = {"PCM_16": ("int16", 2.0**-15), "PCM_24": ("int32", 2.0**-31), "PCM_32": ("int32", 2.0**-31)}


def read_float32(f: sf.SoundFile, frames: int) -> np.ndarray:
    """Up to `frames` frames (-1: the rest) of an open file as float32 `[frames, channels]` in [-1, 1)."""
    integer = _INTEGER_READS.get(f.subtype)
    if integer is None:
        return f.read(frames, dtype="float32", always_2d=True)
    dtype, scale = integer
    return np.multiply(f.read(frames, dtype=dtype, always_2d=True), np.float32(scale), dtype=np.float32)


def _mono(data: np.ndarray) -> np.ndarray:
    """`[frames, channels]` -> the channel mean, NaN -> 0 and +-Inf -> +-1 (row by row: blocks give the same)."""
    if data.shape[1] == 2:  # the common case, ~5x faster than mean(axis=1) and the same floats: (a + b) / 2
        mono = np.add(data[:, 0], data[:, 1])
        mono *= np.float32(0.5)
    else:
        mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(np.dot(mono, mono)):  # one cheap pass; the repair (several passes) only when needed
        mono = np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0)
    return mono


def _resampled_length(n_frames: int, from_hz: int, to_hz: int) -> int:
    return int(math.ceil(n_frames * to_hz / from_hz))


DECODE_BLOCK_FRAMES = 131072  # frames per read at the file's rate (~3 s at 44.1 kHz; 4x fewer reads: ~20% less CPU)


class BlockDecoder:
    """`path` decoded block by block to mono float32 at `target_sr_hz` (None: the file's rate).

    The blocks, concatenated, are exactly `load_audio(path, target_sr_hz)[0]`: the same reads, channel
    mean and repair per row, and libsoxr HQ as a stream (the engine of its one-shot call, same samples;
    without the `soxr` package a rate change is done once at the end by `resample`). A block never runs
    past the samples the frames read so far can give, so a consumer may treat everything received as
    final. Opening checks the file (`AudioFileError`); iterate once; `info` is exact once that has ended.
    `block_frames`: frames per read at the file's rate (default `DECODE_BLOCK_FRAMES`).
    """

    def __init__(self, path: str | Path, target_sr_hz: int | None, block_frames: int | None = None) -> None:
        block_frames = DECODE_BLOCK_FRAMES if block_frames is None else block_frames
        if block_frames < 1:
            raise ValueError(f"block_frames must be >= 1, got {block_frames}")
        self.file = Path(path)
        _check_is_file(self.file)
        try:
            self._sf = sf.SoundFile(str(self.file))
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise AudioFileError(f"{self.file}: not a readable audio file ({_reason(exc)})") from exc
        f = self._sf
        self.header = _info(self.file, f.samplerate, f.channels, f.frames, f.format, f.subtype)
        self.target_sr_hz = f.samplerate if target_sr_hz is None else int(target_sr_hz)
        self.block_frames = int(block_frames)
        self.frames_read = 0

    @property
    def expected_frames(self) -> int:
        """Samples at the target rate the header announces (the true count may differ for some codecs)."""
        return _resampled_length(self.header.frames, self.header.sample_rate_hz, self.target_sr_hz)

    @property
    def info(self) -> AudioInfo:
        h = self.header
        return _info(self.file, h.sample_rate_hz, h.channels, self.frames_read, h.format, h.subtype)

    def __iter__(self) -> Iterator[np.ndarray]:
        rate, target = self.header.sample_rate_hz, self.target_sr_hz
        stream = None
        if rate != target:
            try:
                import soxr

                stream = soxr.ResampleStream(rate, target, 1, dtype="float32", quality="HQ")
            except ImportError:
                stream = None
        whole: list[np.ndarray] = []  # only without soxr: resampled once at the end
        pending = np.zeros(0, dtype=np.float32)  # resampled, not yet released
        sent = 0
        try:
            with self._sf as f:
                while True:
                    data = read_float32(f, self.block_frames)
                    last = data.shape[0] < self.block_frames
                    self.frames_read += data.shape[0]
                    mono = np.ascontiguousarray(_mono(data), dtype=np.float32)
                    if rate == target:
                        if mono.size:
                            yield mono
                    elif stream is None:
                        whole.append(mono)
                    else:
                        fresh = stream.resample_chunk(mono, last=last)
                        pending = np.concatenate([pending, fresh]) if pending.size else fresh
                        limit = _resampled_length(self.frames_read, rate, target)
                        out, pending = pending[: limit - sent], pending[limit - sent :]
                        sent += out.size
                        if out.size:
                            yield out
                    if last:
                        break
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise AudioFileError(f"{self.file}: not a readable audio file ({_reason(exc)})") from exc
        if self.frames_read == 0:
            raise AudioFileError(f"{self.file}: contains no audio frames")
        if whole:
            yield resample(np.concatenate(whole), rate, target)


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample mono audio: libsoxr (high quality, ~3x faster) when the `soxr` package is present, else a
    scipy polyphase FIR with the ratio in lowest terms (e.g. 44100 -> 16000 = 160/441)."""
    if from_hz <= 0 or to_hz <= 0:
        raise ValueError(f"sample rates must be > 0, got {from_hz} -> {to_hz}")
    if from_hz == to_hz:
        return audio
    expected = int(math.ceil(len(audio) * to_hz / from_hz))
    try:
        import soxr
    except ImportError:
        soxr = None
    if soxr is not None:
        out = soxr.resample(np.ascontiguousarray(audio, dtype=np.float32), int(from_hz), int(to_hz), quality="HQ")
    else:
        ratio = Fraction(int(to_hz), int(from_hz))
        out = resample_poly(audio.astype(np.float32, copy=False), ratio.numerator, ratio.denominator)
    return np.ascontiguousarray(out[:expected], dtype=np.float32)


def _check_is_file(file: Path) -> None:
    if file.is_dir():
        raise AudioFileError(f"{file}: is a directory, not an audio file")
    if not file.is_file():
        raise AudioFileError(f"{file}: no such audio file")


def _info(file: Path, rate: int, channels: int, frames: int, fmt: str, subtype: str) -> AudioInfo:
    return AudioInfo(
        duration_s=frames / rate if rate else 0.0,
        sample_rate_hz=int(rate),
        channels=int(channels),
        frames=int(frames),
        format=str(fmt),
        subtype=str(subtype),
        path=str(file),
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
