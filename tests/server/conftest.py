"""Shared pieces for the live-server tests: a deterministic model, and small test doubles.

- `write_follow_model(dir)`: a real model directory (agents.policy format) whose one linear layer
  turns the input-vs-synth loudness gap into master_volume moves and the centroid gap into
  filter_cutoff moves. Deterministic, so tests can predict which way parameters go.
- `FakeExtractor`: loudness / rms / peak / centroid / pitch of a block, every other descriptor 0.
- `FakeVoice`: a sine at the note, gain = master_volume x gate; preallocated, so the output
  callback's no-allocation test measures the callback, not the double.
- `RecordingOsc`: an `OscSink` that keeps what was sent.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from agents.policy import write_model_dir
from features.names import DESCRIPTOR_NAMES, INDEX
from synth.params import PARAM_INDEX, default_vector

FOLLOW_DESCRIPTORS = ("loudness_db", "centroid", "pitch_hz", "pitch_confidence")
FOLLOW_CONTROLLED = ("master_volume", "filter_cutoff")
NORMALIZATION = {
    "loudness_db": {"low": -80.0, "high": 0.0},
    "centroid": {"low": 0.0, "high": 8000.0},
    "pitch_hz": {"low": 0.0, "high": 2000.0},
    "pitch_confidence": {"low": 0.0, "high": 1.0},
}


def write_follow_model(
    model_dir: Path,
    *,
    gain: float = 20.0,
    cutoff_gain: float | None = None,
    tick_s: float = 0.02,
    output_smoothing_s: object = None,
) -> Path:
    """One linear layer + tanh: d master_volume ~ (target - agent) loudness, d cutoff ~ centroid gap."""
    k, p = len(FOLLOW_DESCRIPTORS), len(FOLLOW_CONTROLLED)
    w = np.zeros((p, 2 * k + p), dtype=np.float32)
    w[0, k + 0], w[0, 0] = gain, -gain  # master_volume: target loudness minus agent loudness
    cut = gain if cutoff_gain is None else cutoff_gain
    w[1, k + 1], w[1, 1] = cut, -cut  # filter_cutoff: target centroid minus agent centroid
    start = default_vector()
    start[PARAM_INDEX["master_volume"]] = 0.5
    start[PARAM_INDEX["filter_cutoff"]] = 0.5
    meta = {
        "task": "imitate",
        "algorithm": "hand-written",
        "controlled_params": list(FOLLOW_CONTROLLED),
        "descriptor_names": list(FOLLOW_DESCRIPTORS),
        "normalization": NORMALIZATION,
        "observation": {"history": 0},
        "action": {"kind": "continuous", "delta_max": 0.05},
        "start_preset": [float(v) for v in start],
        "tick_s": tick_s,
    }
    if output_smoothing_s is not None:  # else a model from before the key: trained without smoothing
        meta["output_smoothing_s"] = output_smoothing_s
    return write_model_dir(model_dir, meta, [(w, np.zeros(p, dtype=np.float32))], output="tanh")


class FakeExtractor:
    names = DESCRIPTOR_NAMES

    def __init__(self, sample_rate_hz: int = 48000) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.out = np.zeros(len(DESCRIPTOR_NAMES), dtype=np.float32)

    def process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, dtype=np.float64)
        rms = math.sqrt(float(np.mean(x * x))) + 1e-9
        level_db = 20.0 * math.log10(rms)
        out = self.out
        out[INDEX["loudness_db"]] = level_db
        out[INDEX["rms_db"]] = level_db
        out[INDEX["peak_db"]] = 20.0 * math.log10(float(np.max(np.abs(x))) + 1e-9)
        mag = np.abs(np.fft.rfft(x))
        freqs = np.fft.rfftfreq(len(x), 1.0 / self.sample_rate_hz)
        out[INDEX["centroid"]] = float(np.sum(freqs * mag) / (np.sum(mag) + 1e-12))
        crossings = np.count_nonzero(np.diff(np.signbit(x)))
        out[INDEX["pitch_hz"]] = crossings * self.sample_rate_hz / (2.0 * len(x))
        out[INDEX["pitch_confidence"]] = 1.0 if level_db > -50.0 else 0.0
        return out


class FakeVoice:
    def __init__(self, sample_rate_hz: int = 48000, max_block_size: int = 4096) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.params = default_vector()
        self.note = 60.0
        self.gate = False
        self.note_ons = 0
        self.note_offs = 0
        self.phase = 0.0
        self._ramp = np.arange(1, max_block_size + 1, dtype=np.float32)

    def set_params(self, x_0to1: np.ndarray) -> None:
        self.params[:] = x_0to1

    def note_on(self, midi_note: float) -> None:
        self.note, self.gate = float(midi_note), True
        self.note_ons += 1

    def set_note(self, midi_note: float) -> None:
        self.note = float(midi_note)

    def note_off(self) -> None:
        self.gate = False
        self.note_offs += 1

    def process(self, out: np.ndarray) -> None:
        n = out.shape[0]
        inc = 2.0 * math.pi * 440.0 * 2.0 ** ((self.note - 69.0) / 12.0) / self.sample_rate_hz
        np.multiply(self._ramp[:n], inc, out=out)
        out += self.phase
        self.phase = (self.phase + n * inc) % (2.0 * math.pi)
        np.sin(out, out=out)
        out *= float(self.params[PARAM_INDEX["master_volume"]]) if self.gate else 0.0


class RecordingOsc:
    def __init__(self) -> None:
        self.params: list[np.ndarray] = []
        self.notes: list[float] = []
        self.gates: list[bool] = []
        self.features: list[np.ndarray] = []

    def send_params(self, frame_0to1: np.ndarray) -> None:
        self.params.append(frame_0to1.copy())

    def send_note(self, midi: float) -> None:
        self.notes.append(float(midi))

    def send_gate(self, on: bool) -> None:
        self.gates.append(bool(on))

    def send_features(self, values: np.ndarray) -> None:
        self.features.append(values.copy())


def sine(freq_hz: float, seconds: float, sample_rate_hz: int = 48000, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


@pytest.fixture
def follow_model(tmp_path: Path) -> Path:
    return write_follow_model(tmp_path / "follow_model")


@pytest.fixture
def doubles() -> SimpleNamespace:
    """The doubles and helpers above, for test modules (importlib mode cannot import conftest)."""
    return SimpleNamespace(
        FakeExtractor=FakeExtractor,
        FakeVoice=FakeVoice,
        RecordingOsc=RecordingOsc,
        sine=sine,
        write_follow_model=write_follow_model,
    )
