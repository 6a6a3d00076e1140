"""Streaming Serum-lite voice for live use: the batched renderer's kernel, block by block.

Input: parameter frames [24] normalized (`set_params`, smoothed internally over
`param_smoothing_s`), note and gate events (`note_on`, `set_note`, `note_off`).
Output: `process(out)` fills a float32 block of any size up to `max_block_size`.

State (oscillator and LFO phases, envelope stages, filter and DC-blocker state, smoothed
parameters) lives in preallocated arrays (`synth.dsp.voice_state.VoiceState`) and is carried across
blocks; control signals are updated every 2 ms on the voice's own sample clock, so the block size
does not change the sound. `process` and `set_params` allocate nothing in steady state.
"""

from __future__ import annotations

import numpy as np

from synth.dsp import kernel as k
from synth.dsp.voice_state import VoiceState
from synth.params import N_PARAMS, default_vector


class StreamingVoice:
    """One monophonic Serum-lite voice; not thread-safe (drive it from the audio thread)."""

    def __init__(
        self,
        sample_rate_hz: int,
        max_block_size: int,
        *,
        param_smoothing_s: float = 0.02,
        glide_s: float = 0.0,
        seed: int | None = 0,
    ) -> None:
        if sample_rate_hz <= 0 or max_block_size <= 0:
            raise ValueError(
                f"StreamingVoice: sample_rate_hz and max_block_size must be > 0, got {sample_rate_hz}, {max_block_size}"
            )
        if param_smoothing_s < 0 or glide_s < 0:
            raise ValueError(
                f"StreamingVoice: smoothing and glide times must be >= 0, got {param_smoothing_s}, {glide_s}"
            )
        self.sample_rate_hz = int(sample_rate_hz)
        self.max_block_size = int(max_block_size)
        self._state = VoiceState(sample_rate_hz, param_smoothing_s, glide_s, seed)
        self._wire = np.zeros(N_PARAMS)  # the last frame, wire order (what get_params returns)
        self._perm = np.zeros(N_PARAMS)  # the same in kernel order, before snapping
        self.set_params(default_vector())

    def set_params(self, x_0to1: np.ndarray) -> None:
        """New target parameters [24] normalized (clamped and snapped); reached over the smoothing time."""
        if not isinstance(x_0to1, np.ndarray) or x_0to1.shape != (N_PARAMS,):
            shape = getattr(x_0to1, "shape", type(x_0to1).__name__)
            raise ValueError(f"StreamingVoice.set_params: expected an array of shape ({N_PARAMS},), got {shape}")
        np.copyto(self._wire, x_0to1)
        k.set_target(self._wire, k.PERM, self._perm, k.SPEC, self._state.target, self._state.st)

    def get_params(self) -> np.ndarray:
        """The last frame given to `set_params` (a copy, wire order)."""
        return self._wire.astype(np.float32)

    def set_times(self, param_smoothing_s: float, glide_s: float) -> None:
        self._state.set_times(param_smoothing_s, glide_s)

    def note_on(self, midi_note: float) -> None:
        """Gate on at `midi_note` (fractional allowed): from silence a clean start, else a retrigger."""
        k.note_on(self._state.st, self._state.ctl, self._state.phases, k.DESIGN, float(midi_note))

    def set_note(self, midi_note: float) -> None:
        """Retune without retriggering (glides over `glide_s` while sounding)."""
        k.set_note(self._state.st, float(midi_note))

    def note_off(self) -> None:
        """Gate off: both envelopes release from where they are."""
        k.gate(self._state.st, self._state.ctl, False)

    @property
    def gate(self) -> bool:
        return bool(self._state.st[k.S_GATE] > 0)

    @property
    def sounding(self) -> bool:
        """False once the amp envelope has released to silence."""
        return bool(self._state.st[k.S_AMP] != k.STAGE_IDLE)

    @property
    def note(self) -> float:
        """The MIDI note sounding now (between notes while gliding)."""
        return float(self._state.st[k.S_NOTE])

    def process(self, out: np.ndarray) -> None:
        """Fill `out` (float32, 1-D, at most max_block_size frames) with the next block."""
        if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.ndim != 1:
            raise ValueError("StreamingVoice.process: out must be a 1-D float32 numpy array")
        n = out.shape[0]
        if n > self.max_block_size:
            raise ValueError(f"StreamingVoice.process: block of {n} frames > max_block_size {self.max_block_size}")
        state = self._state  # silent (idle, gate closed): no DSP; a note_on from silence restarts cleanly
        k.stream_block(
            state.st, state.ctl, state.phases, state.incs, state.smooth, state.target, state.tables,
            state.morphed, state.table_key, state.scratch, k.SPEC, k.DESIGN, out, n, state.sample_rate_hz,
        )  # fmt: skip

    @property
    def state(self) -> VoiceState:
        """The arrays the voice carries (the compiled output callback renders through them directly)."""
        return self._state

    @property
    def wire(self) -> np.ndarray:
        """The last parameter frame, wire order (float64 [24]; the compiled callback writes it)."""
        return self._wire

    @property
    def perm_buffer(self) -> np.ndarray:
        """Scratch [24] for the kernel-order copy of a frame."""
        return self._perm
