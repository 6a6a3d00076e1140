"""The note/gate follower: pitch following with confidence, glide, gate hysteresis, fixed modes."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from synth.config import SynthSettings
from synth.note_gate import NoteGateFollower, follow_sequence, hz_to_midi

TICK_S = 512 / 48000


def test_follows_confident_pitch_rounded_and_holds_otherwise() -> None:
    f = NoteGateFollower(SynthSettings(), TICK_S)
    assert f.update(440.0 * 2 ** (0.3 / 12), 0.9, -20).note_midi == 69.0
    st = f.update(261.63, 0.2, -20)  # unsure: hold
    assert st.note_midi == 69.0 and not st.note_changed
    st = f.update(261.63, 0.95, -20)
    assert st.note_midi == 60.0 and st.note_changed
    assert f.update(float("nan"), float("nan"), -20).note_midi == 60.0


def test_gate_hysteresis() -> None:
    f = NoteGateFollower(SynthSettings(gate_on_db=-40, gate_off_db=-50), TICK_S)
    seq = [-60, -45, -39, -45, -49, -51, -45, -39]
    gates, trig, rel = [], [], []
    for loud in seq:
        st = f.update(440.0, 0.9, loud)
        gates.append(st.gate)
        trig.append(st.triggered)
        rel.append(st.released)
    assert gates == [False, False, True, True, True, False, False, True]
    assert trig == [False, False, True, False, False, False, False, True]
    assert rel == [False, False, False, False, False, True, False, False]


def test_gate_always_and_fixed_note() -> None:
    f = NoteGateFollower(SynthSettings(gate="always", note=48), TICK_S)
    st = f.update(880.0, 1.0, -120)
    assert st.gate and st.triggered and st.note_midi == 48.0
    st = f.update(880.0, 1.0, float("-inf"))
    assert st.gate and not st.triggered and st.note_midi == 48.0


def test_glide_moves_fractionally_toward_the_target() -> None:
    f = NoteGateFollower(SynthSettings(note_glide_s=0.05, default_note=60), TICK_S)
    target = hz_to_midi(440.0)
    notes = [f.update(440.0, 1.0, -20).note_midi for _ in range(60)]
    assert 60.0 < notes[0] < notes[1] < target
    assert notes[-1] == pytest.approx(target, abs=0.01)
    assert any(n != round(n) for n in notes)


def test_follow_sequence_equals_the_stepwise_follower() -> None:
    rng = np.random.default_rng(0)
    pitch = rng.uniform(100, 1000, 50)
    conf = rng.random(50)
    loud = rng.uniform(-80, 0, 50)
    settings = SynthSettings()
    notes, gates = follow_sequence(settings, TICK_S, pitch, conf, loud)
    f = NoteGateFollower(settings, TICK_S)
    for t in range(50):
        st = f.update(pitch[t], conf[t], loud[t])
        assert (notes[t], gates[t]) == (st.note_midi, st.gate)
    with pytest.raises(ValueError, match="differ in length"):
        follow_sequence(settings, TICK_S, pitch, conf[:3], loud)


def test_reset_and_bad_tick() -> None:
    f = NoteGateFollower(dataclasses.replace(SynthSettings(), default_note=55), TICK_S)
    f.update(440.0, 1.0, 0.0)
    f.reset()
    assert f.state.note_midi == 55.0 and not f.state.gate
    with pytest.raises(ValueError, match="tick_s"):
        NoteGateFollower(SynthSettings(), 0.0)
    assert math.isclose(hz_to_midi(440.0), 69.0)


def test_default_gate_starts_soft_entrances_early_without_flicker() -> None:
    """The default thresholds on a real recording with slow bowed entrances (the held-out cello of the
    demo corpus, through the live extractor): one trigger per phrase, and each entrance leaves the synth
    silent for at most 2 ticks while the input is already above `gate_off_db` (at -45 dB it was 3-6 ticks:
    the synth missed the start of every soft note)."""
    from pathlib import Path

    from features.audio_io import load_audio
    from features.config import FeatureSettings
    from features.names import DESCRIPTOR_NAMES
    from features.stream import StreamingDescriptors

    features = FeatureSettings()
    block = features.hop_length
    audio, _ = load_audio(Path(__file__).parents[2] / "corpus/demo_test/audio/cello_b.ogg", features.sample_rate_hz)
    listen = StreamingDescriptors(features, features.sample_rate_hz, block)
    frames = np.array([listen.process(audio[i : i + block]).copy() for i in range(0, len(audio) - block + 1, block)])
    pitch, conf, loud = (frames[:, DESCRIPTOR_NAMES.index(n)] for n in ("pitch_hz", "pitch_confidence", "loudness_db"))
    settings = SynthSettings()
    _, gates = follow_sequence(settings, block / features.sample_rate_hz, pitch, conf, loud)
    triggers = int(np.sum(gates[1:] & ~gates[:-1]) + gates[0])
    assert triggers == 3  # the file's three phrases
    late = (loud >= settings.gate_off_db) & ~gates
    assert 0 < late.sum() <= 2 * triggers
