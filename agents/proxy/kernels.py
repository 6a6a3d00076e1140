"""numba kernels of the proxy's gradient-free CPU path (`agents.proxy.model.Proxy`, float32).

Input: float32 arrays (views of torch tensors, no copies). Output: written into `out`.
`encode_rows` is `Proxy.encode` (the parameters in [-1, 1], the note's register, the soft one-hot
pitch classes of the note and of oscillator 2) and `assemble_rows` the "rotate" chroma head and the
de-normalization (`Proxy._assemble`, then `* out_std + out_mean`), each in one pass over the rows
where the torch expressions make a dozen passes with a fresh tensor each: at the proxy's size (a
few hundred multiply-adds per hidden unit) those passes cost as much as a hidden layer. The
differentiable path stays in torch; the tests hold the two together. All kernels release the GIL.
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
# reassociation and FMA contraction let LLVM vectorize silu_rows' polynomial (its error stays ~1e-7 relative)
_JIT_FAST = _JIT | {"fastmath": {"reassoc", "nsz", "contract"}}


@numba.njit(**_JIT)
def _osc2_pitch(params: np.ndarray, note: float, semis_col: int, fine_col: int) -> float:
    """Oscillator 2's pitch (MIDI): note + semitones (-24..24, rounded half to even) + fine (+-0.5)."""
    semis = np.float32(np.rint(params[semis_col] * np.float32(48.0))) - np.float32(24.0)
    return note + semis + (params[fine_col] - np.float32(0.5))


@numba.njit(**_JIT)
def _pitch_class_into(pitch: float, out: np.ndarray, start: int) -> None:
    """out[start + c] = max(0, 1 - circular distance of `pitch` to class c), c = 0..11 (C..B)."""
    base = np.floor(pitch)
    frac = pitch - base
    k = int(base) % 12
    for c in range(12):
        out[start + c] = np.float32(0.0)
    out[start + k] = np.float32(1.0) - frac
    out[start + _wrap(k + 1)] += frac


@numba.njit(**_JIT)
def _wrap(j: int) -> int:
    """j in -12..23 -> j mod 12 (no division)."""
    if j < 0:
        return j + 12
    if j >= 12:
        return j - 12
    return j


@numba.njit(**_JIT)
def _log_gain(gain: float, floor: float, log_floor: float, scale: float) -> float:
    """A gain clipped to [0, 1] -> [-1, 1] on a log scale (`agents.proxy.model.log_level`)."""
    clipped = min(max(gain, np.float32(0.0)), np.float32(1.0))
    return (np.log(clipped + np.float32(floor)) - log_floor) * scale - np.float32(1.0)


@numba.njit(**_JIT)
def encode_rows(
    params: np.ndarray,
    notes: np.ndarray,
    semis_col: int,
    fine_col: int,
    note_center: float,
    note_scale: float,
    level_cols: np.ndarray,
    wave_cols: np.ndarray,
    level_floor: float,
    out: np.ndarray,
) -> None:
    """params [B, P], notes [B] -> out [B, P + 25 + L + 2W]: params * 2 - 1, register, 2 x 12 pitch
    classes, then on a log scale (`agents.proxy.model.log_level`) the L gains `level_cols` and the
    harmonic and even-harmonic gains of the W wave morphs `wave_cols` (`harmonic_gains`; none when 0)."""
    n_params = params.shape[1]
    log_floor = np.log(np.float32(level_floor))
    level_scale = np.float32(2.0) / (np.log1p(np.float32(level_floor)) - log_floor)
    for b in range(params.shape[0]):
        row = out[b]
        for j in range(n_params):
            row[j] = params[b, j] * np.float32(2.0) - np.float32(1.0)
        note = notes[b]
        row[n_params] = (note - np.float32(note_center)) / np.float32(note_scale)
        _pitch_class_into(note, row, n_params + 1)
        _pitch_class_into(_osc2_pitch(params[b], note, semis_col, fine_col), row, n_params + 13)
        at = n_params + 25
        n_levels, n_waves = level_cols.shape[0], wave_cols.shape[0]
        for j in range(n_levels):
            row[at + j] = _log_gain(params[b, level_cols[j]], level_floor, log_floor, level_scale)
        for j in range(n_waves):
            m = params[b, wave_cols[j]] * np.float32(3.0)
            even = min(m, np.float32(2.0) - m)  # 0 at the sine, 1 at the saw, 0 from the square on
            row[at + n_levels + j] = _log_gain(m, level_floor, log_floor, level_scale)  # clipped to [0, 1]
            row[at + n_levels + n_waves + j] = _log_gain(even, level_floor, log_floor, level_scale)


@numba.njit(**_JIT)
def _held_level(
    t: float, attack_x: float, decay_x: float, sustain: float, low: float, log_ratio: float, curve: float
) -> float:
    """An ADSR's level at t s with the gate held (`agents.proxy.encoding._held_envelope`)."""
    a = low * np.exp(attack_x * log_ratio)
    if t < a:
        return t / a
    d = low * np.exp(decay_x * log_ratio)
    x = min(max((t - a) / d, np.float32(0.0)), np.float32(1.0))
    return sustain + (np.float32(1.0) - sustain) * (np.float32(1.0) - x) ** curve


@numba.njit(**_JIT)
def envelope_rows(
    params: np.ndarray,
    cols: np.ndarray,
    constants: np.ndarray,
    times: np.ndarray,
    level_floor: float,
    out: np.ndarray,
    start: int,
) -> None:
    """params [B, P] -> out[:, start : start + 3T]: `agents.proxy.encoding.envelope_inputs` at the T
    `times` (cols: ENVELOPE_COLUMNS; constants: ENVELOPE_CONSTANTS)."""
    low, log_ratio, span, amount_low, amount_span, curve = (
        constants[0],
        constants[1],
        constants[2],
        constants[3],
        constants[4],
        constants[5],
    )
    log_floor = np.log(np.float32(level_floor))
    level_scale = np.float32(2.0) / (np.log1p(np.float32(level_floor)) - log_floor)
    n_times = times.shape[0]
    for b in range(params.shape[0]):
        p = params[b]
        octaves = amount_low + p[cols[7]] * amount_span
        for i in range(n_times):
            t = times[i]
            amp = _held_level(t, p[cols[0]], p[cols[1]], p[cols[2]], low, log_ratio, curve)
            mod = _held_level(t, p[cols[3]], p[cols[4]], p[cols[5]], low, log_ratio, curve)
            cutoff = min(max(p[cols[6]] + octaves * mod / span, np.float32(0.0)), np.float32(1.0))
            out[b, start + i] = _log_gain(amp, level_floor, log_floor, level_scale)
            out[b, start + n_times + i] = mod * np.float32(2.0) - np.float32(1.0)
            out[b, start + 2 * n_times + i] = cutoff * np.float32(2.0) - np.float32(1.0)


@numba.njit(**_JIT)
def assemble_rows(
    y: np.ndarray,
    params: np.ndarray,
    notes: np.ndarray,
    semis_col: int,
    fine_col: int,
    chroma_at: int,
    std: np.ndarray,
    mean: np.ndarray,
    out: np.ndarray,
) -> None:
    """The rotate head's last layer y [B, K + 12] -> descriptors out [B, K] in their units.

    y holds the K - 12 non-chroma outputs, then the chroma relative to the note (12) and to
    oscillator 2 (12); each is rotated to its pitch (a blend of the two neighbouring rotations
    between semitones), the two are summed into chroma_at..chroma_at + 11, and every output is
    de-normalized."""
    k = out.shape[1]
    rel = k - 12
    twice = np.empty(48, np.float32)  # each relative chroma twice in a row: a rotation is a window of it
    for b in range(y.shape[0]):
        src, dst = y[b], out[b]
        for j in range(chroma_at):
            dst[j] = src[j] * std[j] + mean[j]
        for j in range(chroma_at, rel):
            dst[j + 12] = src[j] * std[j + 12] + mean[j + 12]
        for j in range(12):
            twice[j] = twice[j + 12] = src[rel + j]
            twice[24 + j] = twice[36 + j] = src[rel + 12 + j]
        note = notes[b]
        osc2 = _osc2_pitch(params[b], note, semis_col, fine_col)
        base1, base2 = np.floor(note), np.floor(osc2)
        frac1, frac2 = note - base1, osc2 - base2
        at1, at2 = 12 - int(base1) % 12, 36 - int(base2) % 12  # twice[at + c] = relative[(c - i) mod 12]
        for c in range(12):
            low1, high1 = twice[at1 + c], twice[at1 + c - 1]
            low2, high2 = twice[at2 + c], twice[at2 + c - 1]
            chroma = (low1 + frac1 * (high1 - low1)) + (low2 + frac2 * (high2 - low2))
            dst[chroma_at + c] = chroma * std[chroma_at + c] + mean[chroma_at + c]


_EXP_HI = 88.0  # exp(88) ~ 1.65e38, the float32 range; silu(x) for x < -_SILU_ZERO is 0 to float32 precision
_SILU_ZERO = 87.0


SILU_TILE = 2048  # values per tile: the scratch stays in L1 (a whole-array scratch page-faults above ~1k rows)


@numba.njit(**_JIT_FAST)
def silu_tile(x: np.ndarray, poly: np.ndarray, bits: np.ndarray) -> None:
    """x [m] float32 in place; poly, bits [m] scratch. Two simple loops that LLVM vectorizes."""
    scale = bits.view(np.float32)
    for i in range(x.shape[0]):
        v = min(max(-x[i], np.float32(-_EXP_HI)), np.float32(_EXP_HI))
        n = np.floor(v * np.float32(1.44269504088896341) + np.float32(0.5))
        r = v - n * np.float32(0.693359375) - n * np.float32(-2.12194440e-4)
        p = np.float32(1.9875691500e-4) * r + np.float32(1.3981999507e-3)
        p = p * r + np.float32(8.3334519073e-3)
        p = p * r + np.float32(4.1665795894e-2)
        p = p * r + np.float32(1.6666665459e-1)
        p = p * r + np.float32(5.0000001201e-1)
        poly[i] = p * (r * r) + r + np.float32(1.0)
        bits[i] = (np.int32(n) + np.int32(127)) << np.int32(23)
    for i in range(x.shape[0]):
        v = x[i]
        silu = v / (np.float32(1.0) + poly[i] * scale[i])
        x[i] = silu if v > np.float32(-_SILU_ZERO) else v * np.float32(0.0)  # -0, as torch's


@numba.njit(**_JIT_FAST)
def silu_rows(x: np.ndarray) -> None:
    """x [B, H] float32, C-contiguous, in place: x / (1 + exp(-x)) (SiLU), within float32 rounding of torch's.

    exp is Cephes' `expf` (n = round(v log2 e), a degree-6 polynomial on the remainder, the power of
    two built from its exponent bits), in L1-sized tiles of two simple loops (polynomial and bits,
    then the division) that LLVM vectorizes: about twice torch's SiLU on this CPU."""
    flat = x.reshape(-1)
    poly = np.empty(SILU_TILE, np.float32)
    bits = np.empty(SILU_TILE, np.int32)
    for start in range(0, flat.shape[0], SILU_TILE):
        stop = min(flat.shape[0], start + SILU_TILE)
        silu_tile(flat[start:stop], poly[: stop - start], bits[: stop - start])
