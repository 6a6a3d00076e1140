"""`python -m features describe FILE [--json]`: the SPEC output, clear errors, settings and flags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from features.__main__ import main
from features.names import DESCRIPTOR_NAMES
from tests.features.signals import phrase


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "phrase.wav"
    x = phrase(22050, 0.6)
    sf.write(path, np.stack([x, 0.5 * x], axis=1), 22050, subtype="PCM_16")
    return path


def test_json_output_has_the_spec_keys(wav: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", str(wav), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["file"] == str(wav)
    assert (doc["sample_rate"], doc["window_length"], doc["hop_length"]) == (16000, 1024, 512)
    assert doc["original_sample_rate"] == 22050 and doc["channels"] == 2
    d = doc["descriptors"]
    assert list(d) == ["time_s", *DESCRIPTOR_NAMES]
    n = len(d["time_s"])
    assert n == int(0.6 * 16000) // 512
    assert all(len(v) == n for v in d.values())
    assert d["time_s"][1] == pytest.approx(0.032)
    assert 100 < np.median(d["centroid"]) < 8000 and np.median(d["loudness_db"]) < 0


def test_table_output_flags_override_settings(wav: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", str(wav), "--hop-length", "256", "--only", "loudness,pitch_hz"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split("\t") == ["time_s", "loudness_db", "rms_db", "peak_db", "pitch_hz"]
    assert len(lines) - 1 == int(0.6 * 16000) // 256


def test_bad_input_one_line_error_nonzero_exit(tmp_path: Path, wav: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", str(tmp_path / "missing.wav")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.wav: no such audio file" in err
    assert main(["describe", str(wav), "--only", "brightness"]) == 2
    assert "brightness" in capsys.readouterr().err
    assert main(["describe", str(wav), "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("features:\n  hop_lenght: 3\n")
    assert main(["describe", str(wav), "--settings", str(bad)]) == 2
    assert "hop_lenght" in capsys.readouterr().err


def test_threads_flag_gives_the_serial_output(
    wav: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from features import offline

    monkeypatch.setattr(offline, "PARALLEL_CHUNK_FRAMES", 4)  # several chunks from 0.6 s
    outputs = []
    for threads in ("1", "2"):
        assert main(["describe", str(wav), "--json", "--threads", threads]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1]  # exactly: every frame is computed from its own samples, whatever the chunk


def test_module_entry_point_help() -> None:
    out = subprocess.run([sys.executable, "-m", "features", "describe", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--json" in out.stdout and "--settings" in out.stdout


def test_long_inputs_show_a_progress_bar(
    wav: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from features import offline

    monkeypatch.setattr(offline, "PROGRESS_MIN_FRAMES", 1)
    assert main(["describe", str(wav), "--json"]) == 0
    captured = capsys.readouterr()
    assert "describe" in captured.err and json.loads(captured.out)["descriptors"]
