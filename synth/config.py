"""The `synth:` section of environment_settings.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class SynthSettings:
    sample_rate_hz: int = 16000  # offline / training renders
    probe_s: float = 0.5  # length of one probe render (matching env, lookup table)
    note: Literal["follow"] | int = "follow"  # follow the input's pitch, or a fixed MIDI note
    default_note: int = 60  # the note before any pitch was heard, and for probes
    note_glide_s: float = 0.0  # 0: notes are rounded to semitones; > 0: glide time
    pitch_confidence_min: float = 0.6  # follow pitch only above this confidence
    gate: Literal["follow", "always"] = "follow"
    gate_on_db: float = -50.0  # loudness that opens the gate (soft entrances start the synth early) ...
    gate_off_db: float = -55.0  # ... and, lower (hysteresis), closes it
    param_smoothing_s: float = 0.02  # streaming: parameter changes are smoothed over this time
    hold_while_gate_closed: bool = True  # the policy's moves apply only while the gate is open (not in rests)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.gate_off_db > self.gate_on_db:
            raise ValueError(f"gate_off_db ({self.gate_off_db}) must be <= gate_on_db ({self.gate_on_db})")
        if isinstance(self.note, int) and not 0 <= self.note <= 127:
            raise ValueError(f"note must be 'follow' or a MIDI number 0..127, got {self.note}")
        if self.sample_rate_hz <= 0 or self.probe_s <= 0:
            raise ValueError(f"sample_rate_hz and probe_s must be > 0, got {self.sample_rate_hz}, {self.probe_s}")
