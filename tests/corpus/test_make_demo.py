"""The demo corpus: the SMF writer, the seeded melodies, and the shipped audio."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from corpus.make_demo import TEST_TRACKS, TRAIN_TRACKS, compose, finish, scale_pitches
from corpus.smf import CC_EXPRESSION, Note, Song, _vlq, song_to_smf

ROOT = Path(__file__).resolve().parents[2]


def test_vlq_matches_the_midi_spec_examples() -> None:
    assert _vlq(0) == b"\x00"
    assert _vlq(0x7F) == b"\x7f"
    assert _vlq(0x80) == b"\x81\x00"
    assert _vlq(0x3FFF) == b"\xff\x7f"
    assert _vlq(0x200000) == b"\x81\x80\x80\x00"


def test_smf_bytes_have_header_track_and_note_events() -> None:
    song = Song(tempo_bpm=120, program=73, notes=[Note(0.0, 1.0, 60, 100), Note(1.0, 0.5, 64, 80)])
    data = song_to_smf(song)
    assert data[:4] == b"MThd" and struct.unpack(">IHHH", data[4:14]) == (6, 0, 1, 480)
    assert data[14:18] == b"MTrk" and struct.unpack(">I", data[18:22])[0] == len(data) - 22
    assert b"\xff\x51\x03\x07\xa1\x20" in data  # 500,000 us per beat = 120 bpm
    assert b"\xc0\x49" in data and b"\x90\x3c\x64" in data and b"\x80\x3c\x00" in data
    assert data.endswith(b"\xff\x2f\x00")
    with pytest.raises(ValueError, match="pitch"):
        song_to_smf(Song(120, 0, notes=[Note(0, 1, 200, 64)]))


def test_melodies_move_in_pitch_and_loudness_and_stay_in_range() -> None:
    for spec in TRAIN_TRACKS + TEST_TRACKS:
        song = compose(spec)
        pitches = np.array([n.pitch for n in song.notes])
        velocities = np.array([n.velocity for n in song.notes])
        assert spec.low <= pitches.min() and pitches.max() <= spec.high
        assert set(pitches.tolist()) <= set(scale_pitches(spec))
        assert np.ptp(pitches) >= 7, spec.name  # at least a fifth of range
        assert np.ptp(velocities) >= 30, spec.name  # p to f at least
        assert (not spec.sustained) or any(c.controller == CC_EXPRESSION for c in song.controls)
    assert compose(TRAIN_TRACKS[0]).notes == compose(TRAIN_TRACKS[0]).notes  # seeded
    train = {(s.seed, s.program) for s in TRAIN_TRACKS}
    assert not train & {(s.seed, s.program) for s in TEST_TRACKS}  # held-out melodies differ


def test_finish_makes_mono_trimmed_normalized_audio() -> None:
    rate = 8000
    stereo = np.zeros((rate * 3, 2), np.float32)
    stereo[:rate, 0] = 0.2 * np.sin(np.arange(rate) / 5)
    out = finish(stereo, rate, peak_db=-6.0)
    assert out.ndim == 1 and rate < out.size <= rate + rate // 2 + 1
    assert 20 * np.log10(np.abs(out).max()) == pytest.approx(-6.0, abs=0.01)
    assert abs(out[-1]) < 1e-6  # faded out


def test_shipped_demo_corpus_is_small_real_audio() -> None:
    train = sorted((ROOT / "corpus" / "demo" / "audio").glob("*.ogg"))
    test = sorted((ROOT / "corpus" / "demo_test" / "audio").glob("*.ogg"))
    assert [p.stem for p in train] == sorted(s.name for s in TRAIN_TRACKS)
    assert [p.stem for p in test] == sorted(s.name for s in TEST_TRACKS)
    assert sum(p.stat().st_size for p in train + test) <= 3 * 2**20
    for path in train + test:
        info = sf.info(path)
        assert info.channels == 1 and 10.0 <= info.duration <= 40.0


def test_help_names_the_debian_packages() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "corpus.make_demo", "--help"], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert out.returncode == 0 and "fluid-soundfont-gm" in out.stdout and "fluidsynth" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "corpus.make_demo", "--soundfont", "/nonexistent.sf2"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert bad.returncode == 2 and "/nonexistent.sf2" in bad.stderr


@pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").is_file(),
    reason="fluidsynth and fluid-soundfont-gm are not installed",
)
def test_renders_one_track_with_fluidsynth(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "corpus.make_demo",
            "--out",
            str(tmp_path / "demo"),
            "--only",
            "bass",
            "--keep-midi",
            str(tmp_path / "midi"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    audio, rate = sf.read(tmp_path / "demo" / "audio" / "bass.ogg")
    assert rate == 44100 and audio.ndim == 1 and np.abs(audio).max() > 0.5
    assert (tmp_path / "midi" / "bass.mid").read_bytes()[:4] == b"MThd"
