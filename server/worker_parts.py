"""The live worker's collaborators: the interfaces it drives and its input/self audio accumulator.

`Extractor` (`features.stream.StreamingDescriptors`), `Voice` (`synth.stream.StreamingVoice`) and
`OscSink` (`server.osc_io.OscOut`) are what `server.worker.Worker` calls; test doubles implement the
same methods. `Accumulator` collects the frames between two analyses in a buffer allocated once.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


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
    pushes the input blocks between ticks as they arrive instead of collecting them) and `warm()`."""

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
