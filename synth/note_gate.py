"""Which note sounds and when: the note/gate follower of SPEC's "note and gate" section.

Input: per control tick, the input's `pitch_hz`, `pitch_confidence` and `loudness_db`.
Output: the current MIDI note (fractional while gliding) and gate, plus what changed this tick
(triggered, released, note changed). The live server drives the internal synth and sends
`/serumlite/note` / `/serumlite/gate` from it; the imitation environment runs the very same class
over the target's descriptors, so what the agent learns offline is what it does on stage.

Rules (settings `synth.*`):
- `note: follow`: track `pitch_hz` while `pitch_confidence >= pitch_confidence_min` (rounded to
  semitones, or glided with time constant `note_glide_s`), hold the last note otherwise;
  `note: <MIDI>`: always that note.
- `gate: follow`: open when loudness rises to `gate_on_db`, close when it falls below
  `gate_off_db` (hysteresis); `gate: always`: open from the first tick (a held drone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from synth.config import SynthSettings


@dataclass(slots=True)
class NoteGateState:
    note_midi: float
    gate: bool = False
    triggered: bool = False  # the gate opened this tick (note on)
    released: bool = False  # the gate closed this tick (note off)
    note_changed: bool = False  # the sounding note moved this tick


def hz_to_midi(freq_hz: float) -> float:
    return 69.0 + 12.0 * math.log2(freq_hz / 440.0)


class NoteGateFollower:
    """Stateful, allocation-free per tick (returns the same state object each call)."""

    def __init__(self, settings: SynthSettings, tick_s: float) -> None:
        if tick_s <= 0:
            raise ValueError(f"tick_s must be > 0, got {tick_s}")
        self.settings = settings
        self.tick_s = tick_s
        glide_s = settings.note_glide_s
        self._glide_coef = 0.0 if glide_s <= 0 else math.exp(-tick_s / glide_s)
        self.state = NoteGateState(note_midi=float(settings.default_note))
        self.reset()

    def reset(self) -> None:
        s = self.settings
        note = float(s.note) if isinstance(s.note, int) else float(s.default_note)
        self.state.note_midi = note
        self._target_midi = note
        self.state.gate = False
        self.state.triggered = self.state.released = self.state.note_changed = False

    def update(self, pitch_hz: float, pitch_confidence: float, loudness_db: float) -> NoteGateState:
        s, st = self.settings, self.state
        st.triggered = st.released = st.note_changed = False
        before = st.note_midi
        if s.note == "follow":
            if (
                math.isfinite(pitch_hz)
                and pitch_hz > 0.0
                and math.isfinite(pitch_confidence)
                and pitch_confidence >= s.pitch_confidence_min
            ):
                self._target_midi = min(127.0, max(0.0, hz_to_midi(pitch_hz)))
            if self._glide_coef == 0.0:
                st.note_midi = float(round(self._target_midi))
            else:
                st.note_midi = self._target_midi + (st.note_midi - self._target_midi) * self._glide_coef
        st.note_changed = abs(st.note_midi - before) > 1e-6
        if s.gate == "always":
            if not st.gate:
                st.gate = st.triggered = True
        else:
            loud = loudness_db if math.isfinite(loudness_db) else -math.inf
            if not st.gate and loud >= s.gate_on_db:
                st.gate = st.triggered = True
            elif st.gate and loud < s.gate_off_db:
                st.gate = False
                st.released = True
        return st


def follow_sequence(
    settings: SynthSettings,
    tick_s: float,
    pitch_hz: np.ndarray,
    pitch_confidence: np.ndarray,
    loudness_db: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the follower over whole descriptor tracks [T] -> (note_midi [T] float32, gate [T] bool)."""
    follower = NoteGateFollower(settings, tick_s)
    n = len(pitch_hz)
    if not len(pitch_confidence) == len(loudness_db) == n:
        raise ValueError(
            f"tracks differ in length: pitch {n}, confidence {len(pitch_confidence)}, loudness {len(loudness_db)}"
        )
    notes = np.empty(n, dtype=np.float32)
    gates = np.empty(n, dtype=bool)
    for t in range(n):
        st = follower.update(float(pitch_hz[t]), float(pitch_confidence[t]), float(loudness_db[t]))
        notes[t], gates[t] = st.note_midi, st.gate
    return notes, gates
