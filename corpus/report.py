"""`corpus/<name>/analysis.json`: what was analyzed, what was skipped and why, normalization stats.

Input: track results from `corpus.track` and the settings that produced them.
Output: the JSON report (SPEC: tracks analyzed with duration, original sample rate and channels;
tracks skipped with a reason each; per-descriptor statistics), and the content + settings hashes
that make the analysis resumable: a track whose file hash and settings hash match its entry is
not analyzed again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from features.config import FeatureSettings

REPORT_FORMAT_VERSION = 1
ANALYSIS_VERSION = "1"  # bump when the analysis itself changes, to redo every track
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".caf", ".w64"}
)


class ReportError(ValueError):
    """An analysis.json that cannot be read (one line, names the file)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def settings_hash(features: FeatureSettings, min_duration_s: float) -> str:
    """Everything that changes a track's analysis result; part of each track's resume key."""
    payload = {"analysis": ANALYSIS_VERSION, "features": dataclasses.asdict(features), "min_duration_s": min_duration_s}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def track_name(audio_dir: Path, path: Path) -> str:
    """`audio/sub/take 1.wav` -> `sub__take 1` (the CSV name under features/)."""
    return "__".join(path.relative_to(audio_dir).with_suffix("").parts)


def list_audio(audio_dir: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    """Files under audio/ (recursively, hidden ones ignored): candidates, and entries skipped by extension."""
    candidates: list[Path] = []
    skipped: list[dict[str, Any]] = []
    for path in sorted(audio_dir.rglob("*")):
        rel = path.relative_to(audio_dir)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() in AUDIO_EXTENSIONS:
            candidates.append(path)
        else:
            skipped.append({"file": rel.as_posix(), "reason": f"not an audio file extension ({path.suffix or 'none'})"})
    return candidates, skipped


def load_report(path: Path) -> dict[str, Any] | None:
    """The previous report, or None when there is none. A corrupt report raises ReportError."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: cannot read the previous analysis report ({exc}); delete it to start over") from exc
    if not isinstance(data, dict) or data.get("format_version") != REPORT_FORMAT_VERSION:
        return None  # an older layout: analyze everything again
    return data


def previous_entries(report: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """file (relative to audio/) -> its entry, analyzed or skipped, from a previous report."""
    if report is None:
        return {}
    entries: dict[str, dict[str, Any]] = {}
    for key in ("tracks", "skipped"):
        for entry in report.get(key, []):
            if isinstance(entry, dict) and isinstance(entry.get("file"), str):
                entries[entry["file"]] = entry
    return entries


def write_report(path: Path, report: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
