"""The live worker's collaborators: the interfaces it drives, its audio accumulator, its note/gate stage.

`Extractor` (`features.stream.StreamingDescriptors`), `Voice` (`synth.stream.StreamingVoice`) and
`OscSink` (`server.osc_io.OscOut`) are what `server.worker.Worker` calls; test doubles implement the
same methods. `Accumulator` collects the frames between two analyses in a buffer allocated once.
`NoteGateStage`: input descriptors -> the follower -> the self voice's note on/off, the frame's note,
gate and onset count, and the `/serumlite/note` / `/serumlite/gate` messages of the tick.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from server.control import GATE_INDEX, NOTE_INDEX, ONSETS_INDEX
from synth.note_gate import NoteGateFollower

GATE_UNCHANGED, GATE_ON, GATE_OFF = 0, 1, 2


class Accumulator:
    """Frames collected between two analyses (preallocated)."""

    def __init__(self, capacity_frames: int) -> None:
        self.buffer = np.zeros(capacity_frames, dtype=np.float32)
        self.fill = 0

    def room(self, n_frames: int) -> bool:
        return self.fill + n_frames <= self.buffer.shape[0]

    def append(self, frames: np.ndarray) -> None:
        n = frames.shape[0]
        self.buffer[self.fill : self.fill + n] = frames
        self.fill += n

    def take(self) -> np.ndarray:
        """The collected frames (a view), and empty for the next round."""
        view = self.buffer[: self.fill]
        self.fill = 0
        return view


class Extractor(Protocol):
    """`features.stream.StreamingDescriptors`: one block in, all descriptors out (a reused buffer).
    Optional (test doubles may lack them): `push(block)` (into the window, no analysis; the worker then
    pushes the input blocks between ticks as they arrive instead of collecting them), `warm()`, and
    `process_core(block)` + `complete()` with the names `deferrable` (`process` in two steps: the
    worker sends the parameters in between when its model reads none of the deferrable names)."""

    def process(self, block: np.ndarray) -> np.ndarray: ...


class Voice(Protocol):
    """`synth.stream.StreamingVoice`."""

    def set_params(self, x_0to1: np.ndarray) -> None: ...

    def note_on(self, midi_note: float) -> None: ...

    def set_note(self, midi_note: float) -> None: ...

    def note_off(self) -> None: ...

    def process(self, out: np.ndarray) -> None: ...


class OscSink(Protocol):
    """`server.osc_io.OscOut` (the worker is its only caller)."""

    def send_params(self, frame_0to1: np.ndarray) -> None: ...

    def send_note(self, midi: float) -> None: ...

    def send_gate(self, on: bool) -> None: ...

    def send_features(self, values: np.ndarray) -> None: ...


class NoteGateStage:
    """Per tick: `follow(descriptors, voice, frame)` runs the note/gate follower on the input's descriptors
    (in `names` order), plays its decisions on the self voice and writes note, gate and onset count into
    the frame; `send(osc, frame)` then sends what changed (note first, as a synth expects)."""

    def __init__(self, follower: NoteGateFollower, names: Sequence[str]) -> None:
        self.follower = follower
        self._idx_pitch = names.index("pitch_hz") if "pitch_hz" in names else -1
        self._idx_conf = names.index("pitch_confidence") if "pitch_confidence" in names else -1
        self._idx_loud = names.index("loudness_db") if "loudness_db" in names else -1
        self.onsets = 0
        self._note_due, self._gate_due = False, GATE_UNCHANGED  # what `send` sends this tick

    def follow(self, descriptors: np.ndarray, voice: Voice, frame: np.ndarray) -> None:
        pitch = float(descriptors[self._idx_pitch]) if self._idx_pitch >= 0 else math.nan
        conf = float(descriptors[self._idx_conf]) if self._idx_conf >= 0 else math.nan
        loud = float(descriptors[self._idx_loud]) if self._idx_loud >= 0 else math.nan
        if math.isnan(loud) and self.follower.settings.gate == "follow":
            loud = 0.0  # external features without loudness: full scale, the gate opens and stays open (documented)
        state = self.follower.update(pitch, conf, loud)
        note = state.note_midi
        if state.triggered:
            self.onsets += 1
            voice.note_on(note)
            self._note_due, self._gate_due = True, GATE_ON
        elif state.note_changed:
            if state.gate:
                voice.set_note(note)
            self._note_due = True
        if state.released:
            voice.note_off()
            self._gate_due = GATE_OFF
        frame[NOTE_INDEX] = note
        frame[GATE_INDEX] = 1.0 if state.gate else 0.0
        frame[ONSETS_INDEX] = float(self.onsets)

    def send(self, osc: OscSink | None, frame: np.ndarray) -> None:
        if osc is not None:
            if self._note_due:
                osc.send_note(float(frame[NOTE_INDEX]))
            if self._gate_due != GATE_UNCHANGED:
                osc.send_gate(self._gate_due == GATE_ON)
        self._note_due, self._gate_due = False, GATE_UNCHANGED


def yield_to_audio_threads() -> str:
    """Make the calling thread SCHED_BATCH (Linux): it keeps its share of the CPU but no longer preempts
    the thread that wakes it. The worker is woken by the input callback, on PortAudio's audio thread:
    without this the kernel often switched to the worker right at the wake-up, and the audio thread (the
    whole JACK cycle) waited for the worker's block. '' if done, else why not (a one-line reason)."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:
        return "this system has no SCHED_BATCH"
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))  # 0: the calling thread
    except OSError as exc:
        return f"sched_setscheduler(SCHED_BATCH): {exc}"
    return ""
