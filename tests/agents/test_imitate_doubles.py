"""Fast test doubles for the imitation task: a toy sound describer and a toy analysed corpus.

`FakeDescriber` follows `agents.imitate.sound.SoundDescriber` (params [B, 24], notes [B], gates [B]
-> descriptor frames [B, K]) with smooth closed-form descriptors, so environment, training and
resume tests run in milliseconds per step, independently of the real synth's numbers.
`write_fake_corpus` writes `features/<track>.csv` files the way `corpus.analyze` does, with
frames produced by the double from smooth random parameter paths (so they are reachable).
The tests at the bottom check the doubles themselves.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from features.names import DESCRIPTOR_NAMES, INDEX, N_DESCRIPTORS
from synth.params import PARAM_INDEX, default_vector

TICK_S = 512 / 16000


class FakeDescriber:
    """Closed-form descriptors of the controlled parameters (gate off -> silence)."""

    def __init__(self) -> None:
        self.calls = 0

    def describe(self, params_0to1: np.ndarray, notes_midi: np.ndarray, gates: np.ndarray) -> np.ndarray:
        self.calls += 1
        p = np.atleast_2d(np.asarray(params_0to1, dtype=np.float64))
        notes = np.atleast_1d(np.asarray(notes_midi, dtype=np.float64))
        gates = np.atleast_1d(np.asarray(gates, dtype=bool))
        out = np.zeros((p.shape[0], N_DESCRIPTORS))
        vol = p[:, PARAM_INDEX["master_volume"]]
        cutoff = p[:, PARAM_INDEX["filter_cutoff"]]
        noise = p[:, PARAM_INDEX["noise_level"]]
        wave = p[:, PARAM_INDEX["osc1_wave"]]
        loud = -60.0 + 50.0 * vol + 4.0 * p[:, PARAM_INDEX["osc2_level"]]
        out[:, INDEX["loudness_db"]] = loud
        out[:, INDEX["rms_db"]] = loud - 3.0
        out[:, INDEX["peak_db"]] = loud + 3.0
        centroid = 200.0 + 5000.0 * cutoff**2 + 800.0 * wave + 1500.0 * noise
        out[:, INDEX["centroid"]] = centroid
        out[:, INDEX["spread"]] = 0.5 * centroid
        out[:, INDEX["rolloff"]] = 1.8 * centroid
        out[:, INDEX["flatness"]] = -40.0 + 35.0 * noise
        out[:, INDEX["crest"]] = 20.0 - 10.0 * noise
        out[:, INDEX["skewness"]] = 2.0 - cutoff
        out[:, INDEX["kurtosis"]] = 5.0 - 3.0 * cutoff
        out[:, INDEX["pitch_hz"]] = 440.0 * 2.0 ** ((notes - 69.0) / 12.0)
        out[:, INDEX["pitch_confidence"]] = 0.95 - 0.3 * noise
        silent = ~gates
        out[silent] = 0.0
        for name in ("loudness_db", "rms_db", "peak_db"):
            out[silent, INDEX[name]] = -90.0
        out[silent, INDEX["flatness"]] = -90.0
        return out


def write_fake_corpus(root: Path, n_tracks: int = 3, n_frames: int = 120, seed: int = 0) -> Path:
    """An analysed corpus folder (features/*.csv) whose frames the double can produce."""
    rng = np.random.default_rng(seed)
    describer = FakeDescriber()
    (root / "features").mkdir(parents=True, exist_ok=True)
    controlled = [PARAM_INDEX[n] for n in ("master_volume", "filter_cutoff", "noise_level", "osc1_wave", "osc2_level")]
    for t in range(n_tracks):
        params = np.repeat(default_vector()[None, :].astype(np.float64), n_frames, axis=0)
        walk = np.cumsum(rng.normal(0.0, 0.03, size=(n_frames, len(controlled))), axis=0)
        params[:, controlled] = np.clip(0.5 + walk, 0.05, 0.95)
        notes = 55.0 + rng.integers(0, 12) + np.floor(np.arange(n_frames) / 30)
        gates = (np.arange(n_frames) % 40) < 34
        frames = describer.describe(params, notes, gates)
        with (root / "features" / f"track{t}.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["time_s", *DESCRIPTOR_NAMES])
            for i, row in enumerate(frames):
                writer.writerow([f"{i * TICK_S:.6f}", *(f"{v:.6g}" for v in row)])
    return root


def test_fake_describer_is_deterministic_and_silent_when_gated() -> None:
    d = FakeDescriber()
    params = np.tile(default_vector(), (2, 1))
    a = d.describe(params, np.array([60.0, 60.0]), np.array([True, False]))
    b = d.describe(params, np.array([60.0, 60.0]), np.array([True, False]))
    np.testing.assert_array_equal(a, b)
    assert a[1, INDEX["loudness_db"]] == -90.0
    assert a[0, INDEX["loudness_db"]] > -60.0
    assert abs(a[0, INDEX["pitch_hz"]] - 261.63) < 0.1


def test_fake_corpus_has_header_and_frames(tmp_path: Path) -> None:
    write_fake_corpus(tmp_path, n_tracks=2, n_frames=10)
    files = sorted((tmp_path / "features").glob("*.csv"))
    assert [f.stem for f in files] == ["track0", "track1"]
    header = files[0].read_text().splitlines()[0].split(",")
    assert header[0] == "time_s" and header[1:] == list(DESCRIPTOR_NAMES)
    assert len(files[0].read_text().splitlines()) == 11
