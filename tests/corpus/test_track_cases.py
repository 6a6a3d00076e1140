"""One corpus track, every awkward case handled deliberately (docs/corpus.md lists the decisions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from corpus.report import file_sha256
from corpus.track import analyze_track, read_features_csv
from features.config import FeatureSettings
from features.names import DESCRIPTOR_NAMES

FEATURES = FeatureSettings()
COL = {name: i for i, name in enumerate(DESCRIPTOR_NAMES)}


def tone(rate_hz: int = 16000, seconds: float = 1.0, amp: float = 0.5, freq_hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    return (amp * (np.sin(2 * np.pi * freq_hz * t) + 0.3 * np.sin(2 * np.pi * 3 * freq_hz * t))).astype(np.float32)


def run(path: Path, min_duration_s: float = 0.05) -> dict[str, Any]:
    features_dir = path.parent / "features"
    features_dir.mkdir(exist_ok=True)
    return analyze_track(path, path.name, path.stem, features_dir, FEATURES, min_duration_s, file_sha256(path), "k")


def table(entry: dict[str, Any], path: Path) -> np.ndarray:
    names, values = read_features_csv(path.parent / entry["features_csv"])
    assert names == DESCRIPTOR_NAMES
    return values


@pytest.fixture
def reference(tmp_path: Path) -> np.ndarray:
    """Descriptors of the clean 16 kHz mono tone, to compare the converted cases against."""
    path = tmp_path / "ref.wav"
    sf.write(path, tone(), 16000, subtype="PCM_16")
    entry = run(path)
    assert "reason" not in entry and entry["warnings"] == []
    return table(entry, path)


def test_clean_track_writes_csv_with_time_column(tmp_path: Path) -> None:
    path = tmp_path / "clean.flac"
    sf.write(path, tone(), 16000)
    entry = run(path)
    assert entry["sample_rate_hz"] == 16000 and entry["channels"] == 1 and entry["duration_s"] == pytest.approx(1.0)
    header = (tmp_path / "features" / "clean.csv").read_text().splitlines()[0].split(",")
    assert header == ["time_s", *DESCRIPTOR_NAMES]
    values = table(entry, path)
    assert values.shape == (entry["frames"], len(DESCRIPTOR_NAMES))
    assert np.median(values[:, COL["pitch_hz"]]) == pytest.approx(440.0, rel=0.02)


def test_empty_file_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    assert run(path)["reason"] == "empty file (0 bytes)"


def test_text_named_wav_is_skipped_as_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    entry = run(path)
    assert entry["reason"].startswith("unreadable:") and "notes.wav" in entry["reason"]


def test_truncated_wav_is_analyzed_with_a_warning(tmp_path: Path, reference: np.ndarray) -> None:
    path = tmp_path / "cut.wav"
    sf.write(path, tone(), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    entry = run(path)
    assert "reason" not in entry and any(w.startswith("truncated") for w in entry["warnings"])
    assert entry["duration_s"] == pytest.approx(0.5, abs=0.01)
    header_only = tmp_path / "header.wav"
    header_only.write_bytes(data[:30])  # cut inside the header: nothing to read
    assert run(header_only)["reason"].startswith("unreadable:")


def test_silence_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    assert run(path)["reason"].startswith("silent:")


def test_a_few_nan_inf_samples_are_repaired_many_are_skipped(tmp_path: Path, reference: np.ndarray) -> None:
    x = tone()
    x[1000:1010] = np.nan
    x[5000] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    entry = run(path)
    assert "reason" not in entry and entry["warnings"] == ["11 non-finite samples (NaN -> 0, Inf -> +-1)"]
    assert np.all(np.isfinite(table(entry, path)))
    x[::10] = np.nan
    sf.write(path, x, 16000, subtype="FLOAT")
    assert "non-finite samples" in run(path)["reason"]


def test_a_10_ms_clip_is_skipped_as_too_short(tmp_path: Path) -> None:
    path = tmp_path / "click.wav"
    sf.write(path, tone(seconds=0.01), 16000)
    assert run(path)["reason"] == "too short: 0.010 s < corpus.min_duration_s 0.05 s"


def test_8_bit_unsigned_is_analyzed_like_16_bit(tmp_path: Path, reference: np.ndarray) -> None:
    path = tmp_path / "u8.wav"
    sf.write(path, tone(), 16000, subtype="PCM_U8")
    assert sf.info(path).subtype == "PCM_U8"
    entry = run(path)
    assert "reason" not in entry and entry["warnings"] == []  # no DC offset from the unsigned coding
    values = table(entry, path)
    assert np.median(values[:, COL["loudness_db"]]) == pytest.approx(
        np.median(reference[:, COL["loudness_db"]]), abs=0.5
    )


def test_96_khz_stereo_is_resampled_and_downmixed(tmp_path: Path, reference: np.ndarray) -> None:
    path = tmp_path / "hires.wav"
    x = tone(rate_hz=96000)
    sf.write(path, np.column_stack([x, x]), 96000, subtype="PCM_24")
    entry = run(path)
    assert entry["sample_rate_hz"] == 96000 and entry["channels"] == 2 and entry["warnings"] == []
    values = table(entry, path)
    assert values.shape[0] == reference.shape[0]
    for name in ("loudness_db", "centroid", "pitch_hz"):
        assert np.median(values[:, COL[name]]) == pytest.approx(np.median(reference[:, COL[name]]), rel=0.02, abs=0.3)


def test_6_channels_are_downmixed(tmp_path: Path, reference: np.ndarray) -> None:
    path = tmp_path / "surround.wav"
    x = tone()
    sf.write(path, np.column_stack([x] * 6), 16000, subtype="PCM_16")
    entry = run(path)
    assert entry["channels"] == 6 and "reason" not in entry
    assert np.median(table(entry, path)[:, COL["centroid"]]) == pytest.approx(
        np.median(reference[:, COL["centroid"]]), rel=0.01
    )


def test_dc_offset_is_removed_with_a_warning(tmp_path: Path, reference: np.ndarray) -> None:
    path = tmp_path / "dc.wav"
    sf.write(path, tone(amp=0.3) + 0.25, 16000, subtype="FLOAT")
    entry = run(path)
    assert entry["warnings"] == ["DC offset +0.250 removed"]
    rms_ref = np.median(reference[:, COL["rms_db"]]) + 20 * np.log10(0.3 / 0.5)
    assert np.median(table(entry, path)[:, COL["rms_db"]]) == pytest.approx(rms_ref, abs=0.5)
    constant = tmp_path / "constant.wav"
    sf.write(constant, np.full(16000, 0.4, np.float32), 16000, subtype="FLOAT")
    assert run(constant)["reason"].startswith("silent:")  # nothing but DC


def test_hard_clipping_is_analyzed_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "clipped.wav"
    sf.write(path, np.clip(tone(amp=3.0), -1.0, 1.0), 16000, subtype="PCM_16")
    entry = run(path)
    assert "reason" not in entry and len(entry["warnings"]) == 1 and entry["warnings"][0].startswith("hard clipping")
