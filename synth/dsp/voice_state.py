"""The arrays one streaming voice carries between blocks (allocated once, reused by every block).

Input: a sample rate, smoothing and glide times, a noise seed. Output: a `VoiceState` whose arrays
`synth.dsp.kernel` reads and writes in place; `noise_seeds` derives per-voice noise seeds.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from synth.dsp import constants as K
from synth.dsp import kernel as k
from synth.dsp.wavetable import build_tables
from synth.params import N_PARAMS


@functools.cache
def tables64() -> np.ndarray:
    """The wavetables in float64 (shared, read-only)."""
    tables = build_tables().astype(np.float64)
    tables.flags.writeable = False
    return tables


def noise_seeds(count: int, seed: int | None) -> np.ndarray:
    """One non-zero 32-bit xorshift seed per voice, derived from `seed` (None: fresh entropy).

    Seed b is the same whatever `count` is, so a batch row's noise depends on (seed, row) only.
    (torchsynth's Noise, 0.04 ms per call, replays one buffer precomputed for a fixed batch size:
    neither per seed nor streamable, so both paths use the kernel's xorshift instead.)"""
    base = np.random.SeedSequence(seed).generate_state(count, dtype=np.uint32).astype(np.int64)
    return np.where(base == 0, 1, base)


def control_chunk(sample_rate_hz: float) -> int:
    """Samples per control chunk at a rate."""
    return max(1, round(sample_rate_hz * k.CONTROL_PERIOD_S))


class VoiceState:
    """Every array one voice needs; `synth.stream.StreamingVoice` renders through it without allocating."""

    def __init__(self, sample_rate_hz: float, smoothing_s: float, glide_s: float, seed: int | None) -> None:
        self.sample_rate_hz = float(sample_rate_hz)
        self.chunk = control_chunk(sample_rate_hz)
        self.st = np.zeros(k.N_STATE)
        self.ctl = np.zeros(k.N_CONTROL)
        self.phases = np.zeros((2, K.MAX_UNISON))
        self.incs = np.zeros((2, K.MAX_UNISON))
        self.smooth = np.zeros(N_PARAMS)
        self.target = np.zeros(N_PARAMS)
        # per oscillator: current table, previous table, as float32 (value, slope) pairs
        self.morphed = np.zeros((2, 2, 2 * K.TABLE_SIZE), dtype=np.float32)
        self.table_key = np.full((2, 2), -1.0)  # (morph, level) each morphed table was built for
        self.scratch = np.zeros((3, self.chunk))
        self.tables = tables64()
        self.st[k.S_RNG] = float(noise_seeds(1, seed)[0])
        self.st[k.S_FRESH] = 1.0
        self.set_times(smoothing_s, glide_s)

    def set_times(self, smoothing_s: float, glide_s: float) -> None:
        """One-pole coefficients per control chunk (0 s: follow at once)."""
        chunk_s = self.chunk / self.sample_rate_hz
        self.st[k.S_SMOOTH] = 1.0 - math.exp(-chunk_s / smoothing_s) if smoothing_s > 0 else 1.0
        self.st[k.S_GLIDE] = 1.0 - math.exp(-chunk_s / glide_s) if glide_s > 0 else 1.0

    def render(self, out: np.ndarray, start: int, n: int) -> None:
        """Fill out[start:start + n] (float32 or float64) and advance the voice."""
        k.render(
            self.st, self.ctl, self.phases, self.incs, self.smooth, self.target, self.tables, self.morphed,
            self.table_key, self.scratch, k.SPEC, k.DESIGN, out, start, n, self.sample_rate_hz,
        )  # fmt: skip
