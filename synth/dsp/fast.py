"""The fast batched path: many patches through the numba voice kernel, in parallel over patches.

Input: params_0to1 [B, 24] (wire order), MIDI notes [B], a length, a note-off time, a rate, a seed.
Output: audio [B, N] float32. Not differentiable (see `synth.render` for when it is used); the
same kernel as the streaming voice, so a patch renders the same here and live (for the same seed,
row b of a batch uses the noise of `StreamingVoice(seed=...)` only for b = 0). Rows are split
over `torch.get_num_threads()` Python threads; the kernel releases the GIL.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from synth.dsp import kernel as k
from synth.dsp.constants import MAX_UNISON
from synth.dsp.voice_state import control_chunk, noise_seeds, tables64


def _threads(batch: int) -> int:
    """Threads for a batch: torch's setting (so that 'same threads' means the same), at most one per row."""
    import torch

    return max(1, min(torch.get_num_threads(), batch))


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
    out = np.empty((params.shape[0], n_samples), dtype=np.float32)
    seeds = noise_seeds(params.shape[0], seed)
    chunk = control_chunk(sample_rate_hz)
    args = (params, notes, off, float(sample_rate_hz), seeds, tables64(), k.SPEC, k.DESIGN, chunk, MAX_UNISON, out)
    n_threads = _threads(params.shape[0])
    errors: list[BaseException] = []

    def rows(first: int) -> None:
        try:
            k.render_patches(*args, first, n_threads)
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)

    # fresh threads per call, rows interleaved (no pool survives a fork; numba's own threading layers
    # are not fork-safe with GNU OpenMP)
    workers = [threading.Thread(target=rows, args=(t,), daemon=True) for t in range(1, n_threads)]
    for worker in workers:
        worker.start()
    rows(0)
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return out
