"""Analyze one corpus track: audio file -> checks -> descriptors -> `features/<track>.csv`.

Input: an audio file (any format, rate, depth, channel count that `features.audio_io` reads),
the feature settings and `corpus.min_duration_s`.
Output: a report entry (a JSON-ready dict): analyzed (duration, original sample rate and
channels, frames, warnings, CSV path) or skipped (with a reason). Never raises for a bad file:
one bad file must not stop the batch. Runs inside worker processes, so it takes plain values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from corpus.checks import check_signal, count_nonfinite, wav_truncation
from features.audio_io import load_audio
from features.config import FeatureSettings
from features.names import DESCRIPTOR_NAMES
from features.offline import describe_audio

CSV_FORMAT = "%.6g"


def write_features_csv(path: Path, time_s: np.ndarray, descriptors: np.ndarray, names: tuple[str, ...]) -> None:
    """Header `time_s,<names...>`, one row per frame (SPEC)."""
    table = np.column_stack([time_s, descriptors])
    tmp = path.with_suffix(".csv.tmp")
    np.savetxt(tmp, table, delimiter=",", fmt=CSV_FORMAT, header=",".join(("time_s", *names)), comments="")
    tmp.replace(path)


def read_features_csv(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """(column names without time_s, [T, K] descriptors); raises ValueError naming the file."""
    try:
        with path.open(encoding="utf-8") as f:
            header = f.readline().strip().split(",")
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read descriptor table ({exc})") from exc
    if header[:1] != ["time_s"] or table.shape[1] != len(header):
        raise ValueError(f"{path}: header {header[:3]}... does not match {table.shape[1]} columns")
    return tuple(header[1:]), table[:, 1:]


def analyze_track(
    path: Path,
    rel: str,
    name: str,
    features_dir: Path,
    features: FeatureSettings,
    min_duration_s: float,
    sha256: str,
    settings_key: str,
) -> dict[str, Any]:
    """Analyze one file; return its report entry (analyzed, or skipped with a reason)."""
    base: dict[str, Any] = {"file": rel, "track": name, "sha256": sha256, "settings": settings_key}
    if path.stat().st_size == 0:
        return base | {"reason": "empty file (0 bytes)"}
    warnings: list[str] = []
    if (truncated := wav_truncation(path)) is not None:
        warnings.append(truncated + " (the frames present are analyzed)")
    try:
        signal, info = load_audio(path, features.sample_rate_hz)
        nonfinite = count_nonfinite(path, info.subtype)
    except (ValueError, OSError, RuntimeError) as exc:
        return base | {"reason": f"unreadable: {_one_line(exc)}"}
    verdict = check_signal(
        signal,
        features.sample_rate_hz,
        min_duration_s=min_duration_s,
        silence_db=features.silence_db,
        nonfinite=nonfinite,
    )
    source = {"duration_s": round(info.duration_s, 4), "sample_rate_hz": info.sample_rate_hz, "channels": info.channels}
    if verdict.skip_reason is not None:
        return base | source | {"reason": verdict.skip_reason}
    warnings.extend(verdict.warnings)
    time_s, descriptors = describe_audio(verdict.signal, features)
    if not np.all(np.isfinite(descriptors)):
        return base | source | {"reason": "descriptors not finite (a bug in features: please report)"}
    csv_path = features_dir / f"{name}.csv"
    write_features_csv(csv_path, time_s, descriptors, DESCRIPTOR_NAMES)
    return (
        base
        | source
        | {
            "frames": int(descriptors.shape[0]),
            "features_csv": csv_path.relative_to(features_dir.parent).as_posix(),
            "warnings": warnings,
        }
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
