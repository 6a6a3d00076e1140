"""Sanity checks on one corpus track, before its descriptors are computed.

Input: a file path (for container-level checks) or the decoded mono signal at the analysis rate.
Output: a `Verdict` per check: a repaired signal plus warnings (the track is still analyzed), or a
reason to skip the track. Every decision is deliberate and documented in docs/corpus.md:

| case                        | decision                                                          |
| --------------------------- | ----------------------------------------------------------------- |
| empty / unreadable / text   | skipped (decoder's reason, file named)                            |
| truncated WAV data chunk    | analyzed (the frames that are there), warning                      |
| shorter than min_duration_s | skipped                                                           |
| NaN/Inf samples (float WAV) | <= 1% of samples: NaN -> 0, Inf -> +-1, warning; more: skipped    |
| silence (peak < silence_db) | skipped (no descriptors worth learning from, and it skews stats)  |
| DC offset                   | the track mean is removed, warning                                |
| hard clipping               | analyzed as is, warning (it is how the musician's audio sounds)   |
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

MAX_NONFINITE_FRACTION = 0.01
FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})
DC_OFFSET_MIN = 0.01  # |mean| above this (-40 dBFS) is removed with a warning
CLIP_LEVEL = 0.98  # |x| at or above this counts as clipped (resampling may round full scale down a little)
CLIP_WARN_FRACTION = 0.001  # warn when more than 0.1% of samples sit at full scale


@dataclass
class Verdict:
    signal: np.ndarray
    warnings: list[str] = field(default_factory=list)
    skip_reason: str | None = None


def wav_truncation(path: Path) -> str | None:
    """For RIFF/WAVE files: a warning when the data chunk declares more bytes than the file holds."""
    try:
        with path.open("rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = path.stat().st_size
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
                if chunk_id == b"data":
                    held = size - (pos + 8)
                    if chunk_size != 0xFFFFFFFF and chunk_size > held:
                        return f"truncated: the WAV header declares {chunk_size} bytes of audio, the file holds {held}"
                    return None
                pos += 8 + chunk_size + (chunk_size & 1)
    except OSError as exc:
        return f"could not inspect the WAV header ({exc.strerror or exc})"
    return None


def count_nonfinite(path: Path, subtype: str) -> tuple[int, int]:
    """(non-finite samples, all samples) of a float-coded file; (0, 0) for integer codings (never NaN).

    Counted on the raw file, because `features.audio_io.load_audio` already maps NaN -> 0, Inf -> +-1.
    """
    if subtype.upper() not in FLOAT_SUBTYPES:
        return 0, 0
    bad = total = 0
    with sf.SoundFile(str(path)) as f:
        for block in f.blocks(blocksize=1 << 16, dtype="float32", always_2d=True):
            bad += int(np.count_nonzero(~np.isfinite(block)))
            total += block.size
    return bad, total


def check_signal(
    signal: np.ndarray,
    sample_rate_hz: int,
    *,
    min_duration_s: float,
    silence_db: float,
    nonfinite: tuple[int, int] = (0, 0),
) -> Verdict:
    """Run the signal-level checks in order; the first skip reason wins.

    `nonfinite`: (bad, total) samples counted on the raw file by `count_nonfinite`.
    """
    x = np.asarray(signal, dtype=np.float32)
    verdict = Verdict(signal=x)
    duration_s = x.size / float(sample_rate_hz)
    if x.size == 0:
        verdict.skip_reason = "no audio frames"
        return verdict
    if duration_s < min_duration_s:
        verdict.skip_reason = f"too short: {duration_s:.3f} s < corpus.min_duration_s {min_duration_s:g} s"
        return verdict
    if nonfinite[0]:
        fraction = nonfinite[0] / max(1, nonfinite[1])
        if fraction > MAX_NONFINITE_FRACTION:
            verdict.skip_reason = f"{nonfinite[0]} non-finite samples (NaN/Inf, {100 * fraction:.1f}% of the file)"
            return verdict
        verdict.warnings.append(f"{nonfinite[0]} non-finite samples (NaN -> 0, Inf -> +-1)")
    x = raw = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    peak = float(np.abs(x).max())
    mean = float(x.mean()) if x.size else 0.0
    if abs(mean) > DC_OFFSET_MIN:
        x = (x - np.float32(mean)).astype(np.float32)
        verdict.warnings.append(f"DC offset {mean:+.3f} removed")
    ac_peak_db = 20 * np.log10(max(float(np.abs(x).max()), 1e-30))
    if ac_peak_db < silence_db:
        verdict.skip_reason = f"silent: peak {max(ac_peak_db, -999.0):.1f} dBFS (DC removed) < features.silence_db"
        verdict.skip_reason += f" {silence_db:g} dB"
        return verdict
    clipped = float(np.mean(np.abs(raw) >= CLIP_LEVEL)) if peak >= CLIP_LEVEL else 0.0
    if clipped > CLIP_WARN_FRACTION:
        verdict.warnings.append(f"hard clipping: {100 * clipped:.1f}% of samples at full scale (analyzed as is)")
    verdict.signal = x
    return verdict
