"""The fast batched path: many patches through the numba voice kernel, in parallel over patches.

Input: params_0to1 [B, 24] (wire order), MIDI notes [B], a length, a note-off time, a rate, a seed.
Output: audio [B, N] float32. Not differentiable (see `synth.render` for when it is used); the
same kernel as the streaming voice, so a patch renders the same here and live.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from synth.dsp import kernel as k
from synth.dsp.constants import MAX_UNISON
from synth.dsp.wavetable import build_tables


@functools.cache
def _tables64() -> np.ndarray:
    return build_tables().astype(np.float64)


def noise_seeds(batch: int, seed: int | None) -> np.ndarray:
    """One non-zero 32-bit xorshift seed per patch, derived from `seed` (None: fresh entropy)."""
    base = np.random.SeedSequence(seed).generate_state(batch, dtype=np.uint32).astype(np.int64)
    return np.where(base == 0, 1, base)


def render_patches(
    params_0to1: np.ndarray,
    midi_notes: np.ndarray,
    *,
    sample_rate_hz: float,
    n_samples: int,
    note_off_s: float | None,
    seed: int | None,
) -> np.ndarray:
    """[B, 24] normalized + [B] notes -> [B, n_samples] float32 through the streaming kernel."""
    params = np.ascontiguousarray(np.asarray(params_0to1, dtype=np.float64)[:, k.PERM])
    notes = np.ascontiguousarray(midi_notes, dtype=np.float64)
    off = n_samples if note_off_s is None else max(0, math.ceil(note_off_s * sample_rate_hz - 1e-9))
    chunk = max(1, round(sample_rate_hz * k.CONTROL_PERIOD_S))
    out = np.empty((params.shape[0], n_samples), dtype=np.float32)
    seeds = noise_seeds(params.shape[0], seed)
    k.render_patches(
        params, notes, off, float(sample_rate_hz), seeds, _tables64(), k.SPEC, k.DESIGN, chunk, MAX_UNISON, out
    )
    return out
