"""`python -m corpus.analyze`: the whole corpus, the report, resuming, exit codes, the process pool, the map."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from corpus.analyze import analyze_corpus, main
from corpus.map import draw_map
from features.names import DESCRIPTOR_NAMES
from features.normalization import DescriptorStats
from settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = load_settings()
SERIAL = dataclasses.replace(SETTINGS, corpus=dataclasses.replace(SETTINGS.corpus, workers=1))


def tone(freq_hz: float, seconds: float = 0.6, rate_hz: int = 16000, amp: float = 0.4) -> np.ndarray:
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    audio = tmp_path / "mine" / "audio"
    (audio / "takes").mkdir(parents=True)
    sf.write(audio / "low.wav", tone(220), 16000)
    sf.write(audio / "takes" / "high.flac", tone(880, rate_hz=44100), 44100)
    (audio / "broken.wav").write_text("not audio")
    (audio / "readme.txt").write_text("notes")
    (audio / ".DS_Store").write_bytes(b"\0")
    return tmp_path / "mine"


def test_report_lists_tracks_skips_and_stats(corpus: Path) -> None:
    report = analyze_corpus(corpus, SERIAL, progress=False)
    assert [t["track"] for t in report["tracks"]] == ["low", "takes__high"]
    high = report["tracks"][1]
    assert high["sample_rate_hz"] == 44100 and high["channels"] == 1 and high["duration_s"] == pytest.approx(0.6)
    reasons = {s["file"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"broken.wav", "readme.txt"}  # hidden files ignored, nothing else vanishes
    assert reasons["broken.wav"].startswith("unreadable") and "extension" in reasons["readme.txt"]
    stats = DescriptorStats.from_dict(report["stats"])
    assert stats.names == DESCRIPTOR_NAMES and int(stats.count[0]) == report["n_frames"]
    on_disk = json.loads((corpus / "analysis.json").read_text())
    assert on_disk["tracks"] == report["tracks"] and (corpus / "features" / "takes__high.csv").is_file()


def test_resume_skips_unchanged_redoes_changed_and_drops_removed(corpus: Path) -> None:
    analyze_corpus(corpus, SERIAL, progress=False)
    csv = corpus / "features" / "low.csv"
    before = csv.stat().st_mtime_ns
    again = analyze_corpus(corpus, SERIAL, progress=False)
    assert again["reused"] == 3 and csv.stat().st_mtime_ns == before  # 2 tracks + the unreadable file
    sf.write(corpus / "audio" / "low.wav", tone(330), 16000)  # changed content
    (corpus / "audio" / "takes" / "high.flac").unlink()
    third = analyze_corpus(corpus, SERIAL, progress=False)
    assert [t["track"] for t in third["tracks"]] == ["low"] and third["reused"] == 1
    assert csv.stat().st_mtime_ns != before and not (corpus / "features" / "takes__high.csv").exists()
    other = dataclasses.replace(SERIAL, features=dataclasses.replace(SERIAL.features, n_mels=40))
    assert analyze_corpus(corpus, other, progress=False)["reused"] == 0  # settings changed: all redone


def test_process_pool_gives_the_same_tables(corpus: Path, tmp_path: Path) -> None:
    serial = analyze_corpus(corpus, SERIAL, progress=False)
    tables = {t["track"]: (corpus / t["features_csv"]).read_text() for t in serial["tracks"]}
    pooled = dataclasses.replace(SETTINGS, corpus=dataclasses.replace(SETTINGS.corpus, workers=2))
    report = analyze_corpus(corpus, pooled, force=True, progress=False)
    assert report["reused"] == 0
    assert {t["track"]: (corpus / t["features_csv"]).read_text() for t in report["tracks"]} == tables


def test_exit_codes(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(corpus), "--workers", "1", "--quiet"]) == 0
    bad = tmp_path / "bad"
    (bad / "audio").mkdir(parents=True)
    (bad / "audio" / "empty.wav").write_bytes(b"")
    assert main([str(bad), "--workers", "1", "--quiet"]) == 1
    assert "no track could be analyzed" in capsys.readouterr().err
    report = json.loads((bad / "analysis.json").read_text())
    assert report["tracks"] == [] and report["skipped"][0]["reason"] == "empty file (0 bytes)"
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "no audio/ folder" in capsys.readouterr().err
    assert main([str(corpus), "--workers", "-1"]) == 2


def test_cli_help_and_map(corpus: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "corpus.analyze", "--help"], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert out.returncode == 0 and "resumable" in out.stdout.lower()  # one real subprocess: the entry point
    analyze_corpus(corpus, SERIAL, progress=False)
    drawn = draw_map(corpus, None, tmp_path / "map.png")
    assert drawn["tracks"] == ["low", "takes__high"] and drawn["corpus_points"] > 10
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tsne = draw_map(
        corpus, None, tmp_path / "tsne.png", method="tsne", names=("loudness_db", "centroid", "pitch_hz"), max_points=40
    )
    assert tsne["corpus_points"] == drawn["corpus_points"]


def test_shipped_demo_analysis_is_current() -> None:
    """The committed demo analysis matches the audio and settings (else training would read stale tables)."""
    for name in ("demo", "demo_test"):
        folder = ROOT / "corpus" / name
        report = json.loads((folder / "analysis.json").read_text())
        assert report["skipped"] == [] and len(report["tracks"]) >= 3
        assert report["descriptor_names"] == list(DESCRIPTOR_NAMES)
        assert report["features"] == dataclasses.asdict(SETTINGS.features)
        for entry in report["tracks"]:
            header = (folder / entry["features_csv"]).read_text().split("\n", 1)[0]
            assert header == ",".join(("time_s", *DESCRIPTOR_NAMES))
