"""`make demo`'s script: the live server on a recording with the shipped model, then the presets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf


def test_demo_runs_the_live_server_and_renders_presets(tmp_path: Path) -> None:
    sr = 48000
    t = np.arange(int(1.5 * sr)) / sr
    tone = (0.3 * np.sin(2 * np.pi * 220.0 * t) * (t > 0.3)).astype(np.float32)
    wav = tmp_path / "in.wav"
    sf.write(wav, tone, sr)
    out = tmp_path / "demo"
    res = subprocess.run(
        [sys.executable, "scripts/demo.py", "--out", str(out), "--input", str(wav)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    stats = json.loads((out / "live_stats.json").read_text())
    assert stats["blocks"] >= 140 and stats["control_ticks"] > 0 and stats["osc_sent"] > 0
    recorded, rec_sr = sf.read(out / "live.wav")
    assert rec_sr == sr and np.max(np.abs(recorded)) > 0.01  # the synth played while the tone sounded
    assert (out / "live.png").stat().st_size > 10_000
    assert len(list((out / "presets").glob("*.wav"))) >= 8 and (out / "presets.png").exists()
