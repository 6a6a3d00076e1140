"""Audio files -> mono float32 at the analysis rate.

Input: a path to any file libsndfile reads (WAV, AIFF, FLAC, OGG/Vorbis, Opus, MP3; any bit depth,
any channel count, any rate).
Output: `load_audio(path, target_sr_hz)` -> (mono float32 `np.ndarray`, `AudioInfo`). Channels are
averaged; the rate is converted by `resample` (libsoxr HQ, or scipy's polyphase FIR without it);
NaN/Inf samples (possible in float files) become 0 / +-1. Every error is an `AudioFileError` whose
one-line message names the file.
"""

from __future__ import annotations

import math
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
        data, rate = sf.read(str(file), dtype="float32", always_2d=True)
        info = sf.info(str(file))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(f"{file}: not a readable audio file ({_reason(exc)})") from exc
    meta = _info(file, rate, data.shape[1], data.shape[0], info.format, info.subtype)
    if data.shape[0] == 0:
        raise AudioFileError(f"{file}: contains no audio frames")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(np.dot(mono, mono)):  # one cheap pass; the repair (several passes) only when needed
        mono = np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0)
    if target_sr_hz is not None and target_sr_hz != rate:
        mono = resample(mono, rate, target_sr_hz)
    return np.ascontiguousarray(mono, dtype=np.float32), meta


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
