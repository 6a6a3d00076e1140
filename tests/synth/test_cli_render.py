"""`python -m synth render`: writes a WAV of the preset; bad input exits non-zero with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "synth", *args], capture_output=True, text=True, timeout=120)


def test_render_writes_the_preset(tmp_path: Path) -> None:
    out = tmp_path / "pluck.wav"
    res = _run("render", "synth/presets/pluck.json", "--note", "57", "--seconds", "0.5", "--out", str(out))
    assert res.returncode == 0, res.stderr
    audio, sr = sf.read(out)
    assert sr == 16000 and audio.shape == (8000,)
    assert 0.05 < np.max(np.abs(audio)) <= 1.0
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    f0 = np.fft.rfftfreq(len(audio), 1 / sr)[np.argmax(spectrum)]
    assert abs(f0 - 220.0) < 8.0  # MIDI 57 = 220 Hz, the strongest partial of this pluck


def test_render_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    res = _run("render", str(bad), "--out", str(tmp_path / "x.wav"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "bad.json: field 'name'" in res.stderr
    res = _run("render", "synth/presets/pad.json", "--seconds", "-1", "--out", str(tmp_path / "x.wav"))
    assert res.returncode == 2 and "--seconds" in res.stderr
