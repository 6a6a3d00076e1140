"""synth.dsp.kernel._unison (the wavetable lookups): equals a numpy reference of the fixed-point
linear interpolation bit for bit, for any sample count (whole vectors by scalar loads and the masked,
gathered last vector agree), and advances the phases by exactly m samples; `_morph_table` builds the
float32 (value, slope) pairs the lookups read."""

from __future__ import annotations

import numpy as np
import pytest

from synth.dsp import kernel as k

TABLE_SIZE = 2048
CHUNK = 40


def reference(pairs: np.ndarray, phases: np.ndarray, incs: np.ndarray, voices: int, m: int) -> np.ndarray:
    """The kernel's lookup in numpy: 32-bit fixed-point phases, top 11 bits index, the rest interpolate
    between the pair's value and value + slope (float32 pairs, float64 arithmetic)."""
    bits = 32 - int(np.log2(TABLE_SIZE))
    value, slope = pairs[0::2].astype(np.float64), pairs[1::2].astype(np.float64)
    acc = np.zeros(m)
    for u in range(voices):
        p = int(phases[u] * 2**32) & 0xFFFFFFFF
        inc = int(incs[u] * 2**32)
        ph = (p + np.arange(m, dtype=np.int64) * inc) & 0xFFFFFFFF
        idx = ph >> bits
        frac = (ph & ((1 << bits) - 1)).astype(np.float64) * (1.0 / (1 << bits))
        acc += value[idx] + frac * slope[idx]
    return acc


def setup(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    morphed = rng.standard_normal((2, 2, 2 * TABLE_SIZE)).astype(np.float32)
    phases = rng.random((2, 7))
    incs = rng.random((2, 7)) * np.array([[0.001], [0.7]])  # slow and fast (several table wraps per chunk)
    return morphed, phases, incs


@pytest.mark.parametrize("m", [1, 7, 8, 9, 16, 31, 32, 33, CHUNK])
@pytest.mark.parametrize("voices", [1, 3, 7])
def test_lookups_equal_the_reference_bit_for_bit(m: int, voices: int) -> None:
    morphed, phases, incs = setup(m * 10 + voices)
    for osc in range(2):
        for slot in range(2):
            scratch = np.full((3, CHUNK), np.nan)
            want = reference(morphed[osc, slot], phases[osc], incs[osc], voices, m)
            before = phases.copy()
            k._unison(morphed, osc, slot, phases, incs, voices, scratch, 1, m, False)
            np.testing.assert_array_equal(scratch[1, :m], want)
            assert np.isnan(scratch[1, m:]).all() and np.isnan(scratch[[0, 2]]).all()  # nothing else written
            np.testing.assert_array_equal(phases, before)  # advance=False leaves the phases


def test_a_split_render_continues_exactly_and_phases_advance_by_m() -> None:
    morphed, phases, incs = setup(3)
    whole = np.zeros((3, CHUNK))
    split = np.zeros((3, CHUNK))
    phases_whole, phases_split = phases.copy(), phases.copy()
    k._unison(morphed, 1, 0, phases_whole, incs, 7, whole, 0, CHUNK, True)
    k._unison(morphed, 1, 0, phases_split, incs, 7, split, 0, 13, True)
    first = split[0, :13].copy()
    k._unison(morphed, 1, 0, phases_split, incs, 7, split, 0, CHUNK - 13, True)
    np.testing.assert_array_equal(np.concatenate([first, split[0, : CHUNK - 13]]), whole[0])
    np.testing.assert_array_equal(phases_whole, phases_split)
    want = (np.floor(phases[1, :7] * 2**32) + CHUNK * np.floor(incs[1, :7] * 2**32)) % 2**32 / 2**32
    np.testing.assert_array_equal(phases_whole[1], want)
    np.testing.assert_array_equal(phases_whole[0], phases[0])  # the other oscillator is untouched


def test_per_chunk_functions_compile_without_reference_counting() -> None:
    """numba's refcounting (two atomic operations per array argument per call) cost more than the control
    math; these functions must not allocate, so they run without it."""
    for fn in (k.render, k._control, k._unison, k._morph_table, k.gate, k.note_on, k.snap_into):
        assert fn.targetoptions.get("_nrt") is False, fn.__name__


@pytest.mark.parametrize("morph", [0.0, 0.3, 1.0, 2.75, 3.0])
def test_morphed_tables_are_value_and_slope_pairs(morph: float) -> None:
    rng = np.random.default_rng(5)
    tables = rng.standard_normal((4, 3, TABLE_SIZE + 1))
    tables[:, :, -1] = tables[:, :, 0]  # a period, its first sample repeated
    morphed = np.zeros((2, 2, 2 * TABLE_SIZE), dtype=np.float32)
    key = np.full((2, 2), -1.0)
    assert not k._morph_table(tables, morphed, key, 1, morph, 2, True)  # fresh: no crossfade
    lo = min(int(np.floor(morph)), 2)
    want = (tables[lo, 2] + (morph - lo) * (tables[lo + 1, 2] - tables[lo, 2])).astype(np.float32)
    np.testing.assert_array_equal(morphed[1, 0, 0::2], want[:-1])
    np.testing.assert_allclose(morphed[1, 0, 0::2] + morphed[1, 0, 1::2], want[1:], rtol=0, atol=1e-6)
    assert not morphed[0].any()  # the other oscillator is untouched
    before = morphed[1, 0].copy()
    assert k._morph_table(tables, morphed, key, 1, 1.5, 2, False)  # a change: crossfade from the old table
    np.testing.assert_array_equal(morphed[1, 1], before)
    assert not k._morph_table(tables, morphed, key, 1, 1.5, 2, False)  # unchanged: nothing to do
