"""`SerumLiteSynth`: the seed's convenience class around the batched renderer and the presets.

Input: a normalized parameter vector (24, wire order), a MIDI note, a duration; preset files.
Output: mono audio as a torch tensor [N] (float32) from `synth.render.render_batch`; preset files
through `synth.presets` (validated on both ways).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from synth.params import N_PARAMS, default_vector, snap_vector
from synth.presets import Preset, load_preset, save_preset
from synth.render import render_batch


class SerumLiteSynth:
    """One patch at a time: set it, render notes, save or load it as a preset."""

    def __init__(self, sample_rate: int = 16000, buffer_seconds: float = 0.5, *, seed: int = 0) -> None:
        if sample_rate <= 0 or buffer_seconds <= 0:
            raise ValueError(
                f"SerumLiteSynth: sample_rate and buffer_seconds must be > 0, got {sample_rate}, {buffer_seconds}"
            )
        self.sample_rate = int(sample_rate)
        self.buffer_seconds = float(buffer_seconds)
        self.seed = int(seed)
        self._params = default_vector()

    def get_param_vector(self) -> torch.Tensor:
        """The current patch, normalized and snapped: a new float32 tensor of 24."""
        return torch.from_numpy(self._params.copy())

    def set_param_vector(self, params_0to1: torch.Tensor | np.ndarray | Sequence[float]) -> None:
        """Set the patch from 24 normalized values (clamped to [0, 1], discrete ones snapped)."""
        if isinstance(params_0to1, torch.Tensor):
            params_0to1 = params_0to1.detach().cpu().numpy()
        x = np.asarray(params_0to1, dtype=np.float32)
        if x.shape != (N_PARAMS,):
            raise ValueError(f"set_param_vector: expected {N_PARAMS} values, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("set_param_vector: values must be finite")
        self._params = snap_vector(x)

    def render(
        self, midi_note: float = 60.0, dur_s: float | None = None, *, note_off_s: float | None = None
    ) -> torch.Tensor:
        """Render the patch at `midi_note` for `dur_s` (default buffer_seconds), gate on until `note_off_s`."""
        duration_s = self.buffer_seconds if dur_s is None else float(dur_s)
        params = torch.from_numpy(self._params).unsqueeze(0)
        notes = torch.tensor([float(midi_note)])
        audio = render_batch(
            params, notes, sample_rate_hz=self.sample_rate, duration_s=duration_s, note_off_s=note_off_s, seed=self.seed
        )
        return audio[0]

    def save_preset(self, path: str | Path, name: str, *, note: int | None = None, tags: Sequence[str] = ()) -> None:
        """Write the current patch as a preset JSON file (validated by the schema)."""
        save_preset(Preset(name=name, params_0to1=self._params.copy(), note=note, tags=tuple(tags)), path)

    def load_preset(self, path: str | Path) -> Preset:
        """Read a preset file (validated), make it the current patch, and return it."""
        preset = load_preset(path)
        self._params = preset.params_0to1.copy()
        return preset
