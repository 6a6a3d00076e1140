"""The Serum-lite voice as a per-sample numba kernel (shared by `synth.stream` and the fast batched path).

Input: a voice's state arrays (`synth.dsp.voice_state.VoiceState`), target parameters [24]
normalized (kernel order), an output buffer. Output: the buffer filled with `n` samples; the state
advanced (phases, envelope stages, filter, smoothed parameters).

Same design as the torch blocks (`synth.dsp.constants`; the torch path in `synth.render` is its
closed-form twin): control signals (smoothed parameters, LFO, cutoff, pitch) are updated once per
control chunk of `CONTROL_PERIOD_S`, gains ramping linearly across the chunk, the filter is a
topology-preserving state-variable low-pass run per sample. Chunks are aligned to the voice's own
sample count, so rendering in blocks of any size gives the one-shot result.

Every jitted function (and the LLVM intrinsic of the unison lookups) lives in this one file on
purpose: numba's on-disk cache only notices edits to the file a function is defined in, so a kernel
split across files could run stale code.

Speed (issue #2): the functions that run per chunk never allocate and are compiled without numba's
reference counting (`_nrt=False`; it increfs and decrefs every array argument of every call, two
atomic operations each, a dozen arrays per chunk: more than the control math cost); the unison
lookups are written in LLVM IR (`_lerp_voice`); the per-sample work is two loops: one for the
recursive chains (noise, filter, DC blocker, envelopes), which the CPU overlaps, and one LLVM
vectorizes (gain ramps, tremolo, soft clip; its division was a fifth of the per-sample time).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from synth.dsp import constants as K
from synth.params import N_PARAMS, PARAM_INDEX, PARAMS

Arr = np.ndarray
CONTROL_PERIOD_S = 0.002  # control signals are recomputed every 2 ms (32 samples at 16 kHz)

# Everything the kernel reads from other modules travels as arguments, because numba's on-disk
# cache only watches this file: parameters arrive in the kernel's own order `KERNEL_ORDER` (the
# wrappers permute with `PERM`), their ranges as `SPEC` rows, the design constants as `DESIGN`.
KERNEL_ORDER = (
    "osc1_wave", "osc1_level", "osc2_wave", "osc2_level", "osc2_semitones", "osc2_fine", "unison_voices",
    "unison_detune", "noise_level", "filter_cutoff", "filter_resonance", "filter_env_amount",
    "amp_attack", "amp_decay", "amp_sustain", "amp_release", "mod_attack", "mod_decay", "mod_sustain", "mod_release",
    "lfo_rate", "lfo_amount", "lfo_target", "master_volume",
)  # fmt: skip
P_W1, P_L1, P_W2, P_L2, P_SEMI, P_FINE, P_VOICES, P_DETUNE, P_NOISE, P_CUT, P_RES, P_ENVAMT = range(12)
P_AMP, P_MOD = 12, 16  # attack, decay, sustain, release follow in order
P_RATE, P_DEPTH, P_TARGET, P_VOL = 20, 21, 22, 23
PERM = np.array([PARAM_INDEX[name] for name in KERNEL_ORDER], dtype=np.int64)  # wire -> kernel order
_SPECS = [PARAMS[i] for i in PERM]
SPEC = np.array(
    [
        [p.low for p in _SPECS],
        [p.high - p.low for p in _SPECS],
        [math.log(p.high / p.low) if p.curve == "log" else 0.0 for p in _SPECS],
        [max(p.n_steps - 1, 0) for p in _SPECS],
    ],
    dtype=np.float64,
)
SP_LOW, SP_SPAN, SP_LOG, SP_STEPS = range(4)
DESIGN = np.array(
    [
        K.DC_BLOCK_HZ, K.FILTER_MIN_HZ, K.FILTER_MAX_NYQUIST, K.LFO_FILTER_OCTAVES, K.LFO_PITCH_SEMITONES,
        K.MAX_HARMONICS, *K.OSC_FADE_NYQUIST, K.UNISON_PHASE_STEP,
    ],
    dtype=np.float64,
)  # fmt: skip
D_DC_HZ, D_FMIN, D_FMAX_NYQ, D_LFO_OCT, D_LFO_ST, D_HARMONICS, D_FADE_LO, D_FADE_HI, D_PHASE_STEP = range(9)
UNISON_SLOTS = 7  # unison voices the control block has room for
if K.MAX_UNISON > UNISON_SLOTS:
    raise ImportError(f"synth.dsp.kernel holds {UNISON_SLOTS} unison voices, constants ask for {K.MAX_UNISON}")
if len(KERNEL_ORDER) != N_PARAMS:
    raise ImportError(f"synth.dsp.kernel knows {len(KERNEL_ORDER)} parameters, the table has {N_PARAMS}")

# scalar state: st[...]
S_CHUNK_POS, S_NOTE, S_NOTE_TARGET, S_GLIDE, S_SMOOTH, S_GATE, S_LFO_PHASE, S_RNG = range(8)
S_AMP, S_MOD = 8, 12  # envelope blocks: stage, x (progress in stage), start level, level (amp: of the last
# sample; mod: of the next one, as the mod envelope only ticks its progress per sample)
S_IC1, S_IC2, S_DC_X, S_DC_Y, S_FRESH = 16, 17, 18, 19, 20
S_SETTLED = 21  # 1 while the smoothed parameters equal their targets (set_params clears it)
N_STATE = 22
# control values of the current chunk: ctl[...]
C_A1, C_A2, C_A3, C_VOICES, C_LFO0, C_LFO1, C_TO_AMP, C_VOL0, C_VOL1 = range(9)
C_G1_0, C_G1_1, C_G2_0, C_G2_1, C_N_0, C_N_1 = range(9, 15)
C_ENV = 15  # per envelope (amp, mod): attack step, decay step, sustain, release step
C_ENVAMT, C_CUTOFF, C_K, C_TO_FILTER, C_LFO_STEP = 23, 24, 25, 26, 27
C_XFADE = 28  # per oscillator: 1 when its table changed at this chunk (crossfade old -> new)
C_FADE = 30  # per oscillator: fade-out near Nyquist
C_PHYS, C_SRC = 32, 56  # physical values of the smoothed parameters, and the values they were computed from
C_OSC_KEY, C_FILTER_KEY = 80, 88  # what the oscillator frequencies and the filter coefficients were computed from
C_SVF = 92  # the filter as a state-space system: A (4), b (2), c (2), d
C_BASE_INC = 101  # per oscillator and voice: phase increment before the pitch LFO (2 x UNISON_SLOTS)
N_CONTROL = C_BASE_INC + 2 * UNISON_SLOTS
STAGE_IDLE, STAGE_ATTACK, STAGE_DECAY, STAGE_SUSTAIN, STAGE_RELEASE = 0.0, 1.0, 2.0, 3.0, 4.0
MIX, ACC, OLD = range(3)  # rows of the render scratch [3, chunk]


@numba.njit(cache=True, nogil=True, _nrt=False)
def snap_into(x: np.ndarray, spec: np.ndarray, out: np.ndarray) -> None:
    """Clamp to [0, 1] (non-finite -> 0) and snap the discrete parameters, into `out`."""
    for i in range(x.shape[0]):
        v = min(1.0, max(0.0, x[i])) if np.isfinite(x[i]) else 0.0
        steps = spec[SP_STEPS, i]
        out[i] = round(v * steps) / steps if steps > 0 else v


@numba.njit(cache=True, nogil=True, _nrt=False)
def _phys(smooth: np.ndarray, spec: np.ndarray, i: int) -> float:
    if spec[SP_LOG, i] != 0.0:
        return spec[SP_LOW, i] * math.exp(smooth[i] * spec[SP_LOG, i])
    return spec[SP_LOW, i] + smooth[i] * spec[SP_SPAN, i]


@numba.njit(cache=True, nogil=True, inline="always")
def _curve(x: float) -> float:
    """(1 - x) ** 3 for x in [0, 1] (constants.ENV_CURVE, written out: pow() is slow per sample)."""
    y = 1.0 - min(x, 1.0)
    return y * y * y


@numba.njit(cache=True, nogil=True, _nrt=False)
def _env_value(st: np.ndarray, e: int, sustain: float) -> float:
    stage, x, start = st[e], st[e + 1], st[e + 2]
    if stage == STAGE_ATTACK:
        return start + (1.0 - start) * x
    if stage == STAGE_DECAY:
        return sustain + (1.0 - sustain) * _curve(x)
    if stage == STAGE_SUSTAIN:
        return sustain
    if stage == STAGE_RELEASE:
        return start * _curve(x)
    return 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def _env_tick(
    stage: int, x: float, start: float, da: float, dd: float, sustain: float, dr: float
) -> tuple[float, int, float]:
    """One sample of an envelope: (level output now, stage, progress) after advancing by one sample.

    The stage is an int here (the STAGE_* values): integer compares are cheaper per sample."""
    if stage == 1:  # STAGE_ATTACK
        level = start + (1.0 - start) * x
        x += da
        if x >= 1.0:
            stage = 2
            x = (x - 1.0) * dd / da
    elif stage == 2:  # STAGE_DECAY
        level = sustain + (1.0 - sustain) * _curve(x)
        x += dd
        if x >= 1.0:
            stage = 3
    elif stage == 3:  # STAGE_SUSTAIN
        level = sustain
    elif stage == 4:  # STAGE_RELEASE
        level = start * _curve(x)
        x += dr
        if x >= 1.0:
            stage = 0
    else:
        level = 0.0
    return level, stage, x


@numba.njit(cache=True, nogil=True, inline="always")
def _env_step(stage: int, x: float, da: float, dd: float, dr: float) -> tuple[int, float]:
    """`_env_tick` without the level (the mod envelope is only read at chunk starts)."""
    if stage == 1:
        x += da
        if x >= 1.0:
            stage = 2
            x = (x - 1.0) * dd / da
    elif stage == 2:
        x += dd
        if x >= 1.0:
            stage = 3
    elif stage == 4:
        x += dr
        if x >= 1.0:
            stage = 0
    return stage, x


@numba.njit(cache=True, nogil=True, _nrt=False)
def gate(st: np.ndarray, ctl: np.ndarray, on: bool) -> None:
    """Note on (attack from the current level) or note off (release from the current level)."""
    for e, c in ((S_AMP, C_ENV), (S_MOD, C_ENV + 4)):
        level = _env_value(st, e, ctl[c + 2])
        st[e] = STAGE_ATTACK if on else (STAGE_RELEASE if st[e] != STAGE_IDLE else STAGE_IDLE)
        st[e + 1] = 0.0
        st[e + 2] = level
    st[S_GATE] = 1.0 if on else 0.0


@numba.njit(cache=True, nogil=True, _nrt=False)
def _morph_table(state_tables: Arr, morphed: Arr, key: Arr, osc: int, morph: float, level: int, fresh: bool) -> bool:
    """Rebuild morphed[osc, 0] for (morph, level) if it changed, keeping the old one in morphed[osc, 1].

    A morphed table is float32 pairs (value at i, value at i + 1 minus it) for i < TABLE_SIZE: the
    unison lookup fetches both with one 64-bit load (the last pair's slope leads back to the first
    value: a period). Returns True when the chunk must crossfade
    from the old table (not on a fresh start)."""
    if key[osc, 0] == morph and key[osc, 1] == level:
        return False
    if not fresh:
        for i in range(morphed.shape[2]):
            morphed[osc, 1, i] = morphed[osc, 0, i]
    lo = min(int(math.floor(morph)), state_tables.shape[0] - 2)
    w = morph - lo
    a = state_tables[lo, level, 0]
    here = np.float32(a + w * (state_tables[lo + 1, level, 0] - a))
    for i in range(morphed.shape[2] // 2):
        a = state_tables[lo, level, i + 1]
        after = np.float32(a + w * (state_tables[lo + 1, level, i + 1] - a))
        morphed[osc, 0, 2 * i] = here
        morphed[osc, 0, 2 * i + 1] = np.float64(after) - np.float64(here)
        here = after
    key[osc, 0] = morph
    key[osc, 1] = level
    return not fresh


@numba.njit(cache=True, nogil=True, _nrt=False)
def _update(ctl: np.ndarray, at: int, value: float) -> bool:
    """Store `value` at ctl[at]; True if it differed from what was there (scalar: no tuple, no view)."""
    if ctl[at] == value:
        return False
    ctl[at] = value
    return True


@numba.njit(cache=True, nogil=True, _nrt=False, error_model="numpy")
def _control(
    st: Arr, ctl: Arr, smooth: Arr, target: Arr, incs: Arr, tables: Arr, morphed: Arr, key: Arr, spec: Arr, design: Arr,
    chunk: int, rate: float,
) -> None:  # fmt: skip
    """Start of a control chunk: smooth the parameters and derive this chunk's control values.

    Transcendental functions only run for what changed (physical values, pitch, cutoff)."""
    fresh = st[S_FRESH] > 0
    settled = st[S_SETTLED] > 0 and not fresh
    if not settled:
        coef = st[S_SMOOTH]
        still = True
        for i in range(N_PARAMS):
            if spec[SP_STEPS, i] > 0 or fresh or abs(target[i] - smooth[i]) < 1e-7:
                smooth[i] = target[i]
            else:
                smooth[i] += (target[i] - smooth[i]) * coef
                still = False
            if fresh or smooth[i] != ctl[C_SRC + i]:
                ctl[C_SRC + i] = smooth[i]
                ctl[C_PHYS + i] = _phys(smooth, spec, i)
        st[S_SETTLED] = 1.0 if still else 0.0
    if st[S_NOTE] != st[S_NOTE_TARGET]:
        glide = 1.0 if fresh else st[S_GLIDE]
        st[S_NOTE] += (st[S_NOTE_TARGET] - st[S_NOTE]) * glide
        if abs(st[S_NOTE_TARGET] - st[S_NOTE]) < 1e-6:
            st[S_NOTE] = st[S_NOTE_TARGET]
    nyquist = 0.5 * rate
    # LFO: value at the chunk start and end (linear in between), routed by target
    lfo_step = ctl[C_PHYS + P_RATE] / rate
    ph = st[S_LFO_PHASE]
    # settled: this chunk starts where the last one ended (same rate), so one sine per chunk
    ctl[C_LFO0] = ctl[C_LFO1] if settled and ctl[C_LFO_STEP] == lfo_step else math.sin(2.0 * math.pi * ph)
    ctl[C_LFO_STEP] = lfo_step
    ctl[C_LFO1] = math.sin(2.0 * math.pi * (ph + chunk * lfo_step))
    target_i = round(ctl[C_PHYS + P_TARGET])
    depth = ctl[C_PHYS + P_DEPTH]
    to_pitch = depth if target_i == 0 else 0.0
    ctl[C_TO_FILTER] = depth if target_i == 1 else 0.0
    ctl[C_TO_AMP] = depth if target_i == 2 else 0.0
    pitch_semi = design[D_LFO_ST] / 12.0
    ratio = 1.0
    if to_pitch != 0.0:
        ratio = 2.0 ** (to_pitch * pitch_semi * math.sin(2.0 * math.pi * (ph + 0.5 * chunk * lfo_step)))
    # oscillators: frequencies, tables and fades only when what they depend on changed
    voices = int(round(ctl[C_PHYS + P_VOICES]))
    ctl[C_VOICES] = voices
    detune = ctl[C_PHYS + P_DETUNE]
    osc_changed = _update(ctl, C_OSC_KEY, st[S_NOTE]) | _update(ctl, C_OSC_KEY + 1, to_pitch)
    osc_changed |= _update(ctl, C_OSC_KEY + 2, detune) | _update(ctl, C_OSC_KEY + 3, ctl[C_PHYS + P_SEMI])
    osc_changed |= _update(ctl, C_OSC_KEY + 4, ctl[C_PHYS + P_FINE]) | _update(ctl, C_OSC_KEY + 5, ctl[C_PHYS + P_W1])
    osc_changed |= _update(ctl, C_OSC_KEY + 6, ctl[C_PHYS + P_W2]) | _update(ctl, C_OSC_KEY + 7, float(voices))
    if osc_changed or fresh:
        f1 = 440.0 * 2.0 ** ((st[S_NOTE] - 69.0) / 12.0)
        f2 = f1 * 2.0 ** ((ctl[C_PHYS + P_SEMI] + ctl[C_PHYS + P_FINE] / 100.0) / 12.0)
        lo, hi = design[D_FADE_LO], design[D_FADE_HI]
        for osc in range(2):
            base = f1 if osc == 0 else f2
            top = base * 2.0 ** (detune / 2400.0) * 2.0 ** (to_pitch * pitch_semi)
            level = int(
                min(max(math.ceil(math.log2(design[D_HARMONICS] * max(top, 1e-3) / nyquist)), 0), tables.shape[1] - 1)
            )
            morph = ctl[C_PHYS + P_W1] if osc == 0 else ctl[C_PHYS + P_W2]
            changed = _morph_table(tables, morphed, key, osc, morph, level, fresh)
            ctl[C_XFADE + osc] = 1.0 if changed else 0.0
            ctl[C_FADE + osc] = min(max((hi - top / nyquist) / (hi - lo), 0.0), 1.0)
            for u in range(voices):
                position = u / (voices - 1) - 0.5 if voices > 1 else 0.0
                ctl[C_BASE_INC + osc * UNISON_SLOTS + u] = base * 2.0 ** (detune * position / 1200.0) / rate
    else:
        ctl[C_XFADE] = 0.0
        ctl[C_XFADE + 1] = 0.0
    for osc in range(2):
        for u in range(voices):
            incs[osc, u] = ctl[C_BASE_INC + osc * UNISON_SLOTS + u] * ratio
    for osc in range(2):
        g_new = (ctl[C_PHYS + P_L1] if osc == 0 else ctl[C_PHYS + P_L2]) * ctl[C_FADE + osc] / math.sqrt(voices)
        g = C_G1_0 if osc == 0 else C_G2_0
        ctl[g] = g_new if fresh else ctl[g + 1]
        ctl[g + 1] = g_new
    ctl[C_N_0] = ctl[C_PHYS + P_NOISE] if fresh else ctl[C_N_1]
    ctl[C_N_1] = ctl[C_PHYS + P_NOISE]
    ctl[C_VOL0] = ctl[C_PHYS + P_VOL] if fresh else ctl[C_VOL1]
    ctl[C_VOL1] = ctl[C_PHYS + P_VOL]
    # envelopes: per-sample steps of the stage progress, sustain level
    for j in range(0 if settled else 2):
        p, c = (P_AMP, C_ENV) if j == 0 else (P_MOD, C_ENV + 4)
        ctl[c] = 1.0 / (ctl[C_PHYS + p] * rate)
        ctl[c + 1] = 1.0 / (ctl[C_PHYS + p + 1] * rate)
        ctl[c + 2] = ctl[C_PHYS + p + 2]
        ctl[c + 3] = 1.0 / (ctl[C_PHYS + p + 3] * rate)
    # filter: cutoff from the mod envelope and the LFO at the chunk start
    octaves = (
        ctl[C_PHYS + P_ENVAMT] * _env_value(st, S_MOD, ctl[C_ENV + 6])
        + ctl[C_TO_FILTER] * design[D_LFO_OCT] * ctl[C_LFO0]
    )
    filter_changed = _update(ctl, C_FILTER_KEY, octaves) | _update(ctl, C_FILTER_KEY + 1, ctl[C_PHYS + P_CUT])
    if _update(ctl, C_FILTER_KEY + 2, ctl[C_PHYS + P_RES]) | filter_changed or fresh:
        cutoff = min(max(ctl[C_PHYS + P_CUT] * 2.0**octaves, design[D_FMIN]), design[D_FMAX_NYQ] * nyquist)
        g = math.tan(math.pi * cutoff / rate)
        k = 1.0 / ctl[C_PHYS + P_RES]
        a1 = 1.0 / (1.0 + g * (g + k))
        a2 = g * a1
        a3 = g * a2
        # s' = A s + b x, y = c.s + d x with s = (ic1, ic2): the TPT SVF with a short dependency chain
        ctl[C_SVF], ctl[C_SVF + 1], ctl[C_SVF + 2] = 2 * a1 - 1, -2 * a2, 2 * a2
        ctl[C_SVF + 3], ctl[C_SVF + 4], ctl[C_SVF + 5] = 1 - 2 * a3, 2 * a2, 2 * a3
        ctl[C_SVF + 6], ctl[C_SVF + 7], ctl[C_SVF + 8] = a2, 1 - a3, a3
    st[S_FRESH] = 0.0


@numba.njit(cache=True, nogil=True, inline="always", fastmath=True)
def softclip(x: float) -> float:
    """tanh-like rational soft clip, exactly +-1 (with zero slope) from |x| = 3 on."""
    x = min(3.0, max(-3.0, x))
    return x * (27.0 + x * x) / (27.0 + 9.0 * x * x)


UNISON_LANES = 8  # samples per vector step of the unison lookups


@intrinsic
def _lerp_voice(typingctx, table, base, p, inc, bits, acc, at, m):
    """acc.flat[at + j] += a + frac * d with (a, d) = table.flat[base + 2 idx : base + 2 idx + 2] for j < m, where
    ph = (p + j * inc) & 0xFFFFFFFF, idx = ph >> bits and frac = (ph mod 2**bits) / 2**bits: one unison
    voice over m samples, UNISON_LANES at a time (the last step masked).

    Written in LLVM IR because numba cannot tell LLVM that the table and the accumulator do not overlap,
    so its loop stays scalar. Here a whole vector of lanes takes one 64-bit load per sample, a float32
    (value, slope) pair, at an index from 32-bit wrapping phase arithmetic, and the interpolation and the
    accumulation run on vectors; only the last, partial vector uses a masked gather and a masked load /
    store. Measured on AMD Zen 3 (issue #2, same process, bit-identical output): unmasked accumulation
    1.37x (masked stores are microcoded there), one load per sample instead of two 1.09x, int32 instead
    of int64 -> double conversion 1.24x (AVX2 has no vector int64 conversion), scalar loads instead of
    hardware gathers 1.09x and 1.09x again with 32-bit phases. The IR has no fast-math flags and every
    sample takes the same operations whichever path it falls in, so a block split anywhere renders what
    the one-shot render does."""
    arrays_ok = all(isinstance(a, types.Array) and a.layout == "C" for a in (table, acc))
    arrays_ok = arrays_ok and table.dtype == types.float32 and acc.dtype == types.float64
    if not arrays_ok or any(x != types.int64 for x in (base, p, inc, bits, at, m)):
        return None
    sig = types.void(table, base, p, inc, bits, acc, at, m)

    def codegen(context, builder, signature, args):
        lanes = UNISON_LANES
        table_data = context.make_array(signature.args[0])(context, builder, args[0]).data
        acc_data = context.make_array(signature.args[5])(context, builder, args[5]).data
        base_, p_, inc_, bits_, _, at_, m_ = args[1:]
        i1, i32, i64, f32, f64 = ir.IntType(1), ir.IntType(32), ir.IntType(64), ir.FloatType(), ir.DoubleType()
        v32, v64, vf, vb = (ir.VectorType(t, lanes) for t in (i32, i64, f64, i1))
        pairs = ir.VectorType(f32, 2 * lanes)
        evens = ir.Constant(v32, list(range(0, 2 * lanes, 2)))
        odds = ir.Constant(v32, list(range(1, 2 * lanes, 2)))
        align = ir.Constant(i32, 8)
        zeros = ir.Constant(vf, [0.0] * lanes)

        def splat(x: ir.Value) -> ir.Value:
            one = builder.insert_element(ir.Constant(ir.VectorType(x.type, lanes), None), x, ir.Constant(i32, 0))
            return builder.shuffle_vector(one, one, ir.Constant(v32, [0] * lanes))

        vptr = ir.PointerType(vf)
        pointers = ir.VectorType(ir.PointerType(f64), lanes)
        gather = builder.module.declare_intrinsic(
            f"llvm.masked.gather.v{lanes}f64.v{lanes}p0", fnty=ir.FunctionType(vf, [pointers, i32, vb, vf])
        )
        load = builder.module.declare_intrinsic(
            f"llvm.masked.load.v{lanes}f64.p0", fnty=ir.FunctionType(vf, [vptr, i32, vb, vf])
        )
        store = builder.module.declare_intrinsic(
            f"llvm.masked.store.v{lanes}f64.p0", fnty=ir.FunctionType(ir.VoidType(), [vf, vptr, i32, vb])
        )
        # the table as 64-bit (value, slope) pairs; phases as wrapping 32-bit integers
        first_value = builder.gep(builder.bitcast(table_data, ir.PointerType(f32)), [base_])
        pair_ptr = builder.bitcast(first_value, ir.PointerType(f64))
        p32, inc32, bits32 = (builder.trunc(x, i32) for x in (p_, inc_, bits_))
        lane_inc = builder.mul(ir.Constant(v32, list(range(lanes))), splat(inc32))
        frac_mask = splat(builder.sub(builder.shl(ir.Constant(i32, 1), bits32), ir.Constant(i32, 1)))
        scale = builder.fdiv(ir.Constant(f64, 1.0), builder.sitofp(builder.shl(ir.Constant(i64, 1), bits_), f64))
        scales = splat(scale)
        step32 = builder.mul(inc32, ir.Constant(i32, lanes))

        def step_at(j: ir.Value, q: ir.Value, active: ir.Value | None) -> None:
            """acc[at + j + lane] += a + frac * d for lanes whose phase is q + lane * inc (mod 2**32);
            active None: all lanes, by scalar loads (cheaper than gathers on AMD Zen), plain load and store."""
            ph = builder.add(splat(q), lane_inc)
            if active is None:
                fetched = ir.Constant(vf, None)
                for lane_i in range(lanes):
                    ph_i = builder.add(q, builder.mul(ir.Constant(i32, lane_i), inc32))
                    at_i = builder.gep(pair_ptr, [builder.zext(builder.lshr(ph_i, bits32), i64)])
                    fetched = builder.insert_element(fetched, builder.load(at_i, align=8), ir.Constant(i32, lane_i))
            else:
                index = builder.zext(builder.lshr(ph, splat(bits32)), v64)  # (llvmlite's gep takes no vectors)
                offset = builder.shl(index, splat(ir.Constant(i64, 3)))
                at_v = builder.add(splat(builder.ptrtoint(pair_ptr, i64)), offset)
                fetched = builder.call(gather, [builder.inttoptr(at_v, pointers), align, active, zeros])
            pair = builder.bitcast(fetched, pairs)
            a = builder.fpext(builder.shuffle_vector(pair, pair, evens), vf)
            d = builder.fpext(builder.shuffle_vector(pair, pair, odds), vf)
            frac = builder.fmul(builder.sitofp(builder.and_(ph, frac_mask), vf), scales)
            value = builder.fadd(a, builder.fmul(frac, d))
            out = builder.bitcast(builder.gep(acc_data, [builder.add(at_, j)]), vptr)
            if active is None:
                builder.store(builder.fadd(builder.load(out, align=8), value), out, align=8)
            else:  # masked loads and stores are microcoded and slow on AMD: only for the last, partial vector
                total = builder.fadd(builder.call(load, [out, align, active, zeros]), value)
                builder.call(store, [total, out, align, active])

        m_full = builder.and_(m_, ir.Constant(i64, -lanes))
        entry = builder.block
        body = builder.append_basic_block("lerp_voice.body")
        rest = builder.append_basic_block("lerp_voice.rest")
        tail = builder.append_basic_block("lerp_voice.tail")
        done = builder.append_basic_block("lerp_voice.done")
        builder.cbranch(builder.icmp_signed(">", m_full, ir.Constant(i64, 0)), body, rest)
        builder.position_at_end(body)
        j = builder.phi(i64)
        q = builder.phi(i32)
        j.add_incoming(ir.Constant(i64, 0), entry)
        q.add_incoming(p32, entry)
        step_at(j, q, None)
        j_next = builder.add(j, ir.Constant(i64, lanes))
        q_next = builder.add(q, step32)
        j.add_incoming(j_next, builder.block)
        q.add_incoming(q_next, builder.block)
        body_end = builder.block
        builder.cbranch(builder.icmp_signed("<", j_next, m_full), body, rest)
        builder.position_at_end(rest)
        j_rest = builder.phi(i64)
        q_rest = builder.phi(i32)
        j_rest.add_incoming(ir.Constant(i64, 0), entry)
        q_rest.add_incoming(p32, entry)
        j_rest.add_incoming(j_next, body_end)
        q_rest.add_incoming(q_next, body_end)
        builder.cbranch(builder.icmp_signed("<", j_rest, m_), tail, done)
        builder.position_at_end(tail)
        lane64 = ir.Constant(v64, list(range(lanes)))
        step_at(j_rest, q_rest, builder.icmp_signed("<", builder.add(splat(j_rest), lane64), splat(m_)))
        builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True, nogil=True, _nrt=False)
def _unison(
    morphed: Arr,
    osc: int,
    slot: int,
    phases: Arr,
    incs: Arr,
    voices: int,
    scratch: Arr,
    row: int,
    m: int,
    advance: bool,
) -> None:
    """scratch[row, :m] = sum of `voices` linear-interpolated lookups in morphed[osc, slot]; phases[osc]
    advance by m samples if `advance`.

    Phases run in 32-bit fixed point (wrap-around, 3x faster than float phases): the top log2(pairs) bits
    index the table's (value, slope) pairs, the rest interpolate."""
    size = morphed.shape[2]  # float32 entries: (value, slope) pairs
    bits = 32  # 32 - log2(size / 2)
    while (1 << (32 - bits)) < size // 2:
        bits -= 1
    base = (osc * morphed.shape[1] + slot) * size
    at = row * scratch.shape[1]
    mask = 0xFFFFFFFF
    for j in range(m):
        scratch[row, j] = 0.0
    for u in range(voices):
        p = int(phases[osc, u] * 4294967296.0) & mask
        inc = int(incs[osc, u] * 4294967296.0)
        _lerp_voice(morphed, base, p, inc, bits, scratch, at, m)
        if advance:
            phases[osc, u] = float((p + m * inc) & mask) / 4294967296.0


@numba.njit(cache=True, nogil=True, _nrt=False, fastmath=True, error_model="numpy")
def render(
    st: Arr, ctl: Arr, phases: Arr, incs: Arr, smooth: Arr, target: Arr, tables: Arr, morphed: Arr, key: Arr,
    scratch: Arr, spec: Arr, design: Arr, out: Arr, start: int, n: int, rate: float,
) -> None:  # fmt: skip
    """Fill out[start:start + n] and advance the voice."""
    chunk = scratch.shape[1]
    dc_r = math.exp(-2.0 * math.pi * design[D_DC_HZ] / rate)
    i = 0
    while i < n:
        pos = int(st[S_CHUNK_POS])
        if pos == 0:
            _control(st, ctl, smooth, target, incs, tables, morphed, key, spec, design, chunk, rate)
        m = min(n - i, chunk - pos)
        voices = int(ctl[C_VOICES])
        for j in range(m):
            scratch[MIX, j] = 0.0
        for osc in range(2):
            g0 = ctl[C_G1_0 + 2 * osc]
            dg = (ctl[C_G1_0 + 2 * osc + 1] - g0) / chunk
            if g0 == 0.0 and dg == 0.0:
                for u in range(voices):  # keep the phases running
                    phases[osc, u] = (phases[osc, u] + m * incs[osc, u]) % 1.0
                continue
            if ctl[C_XFADE + osc] > 0:  # the table changed at this chunk: crossfade across it
                _unison(morphed, osc, 1, phases, incs, voices, scratch, OLD, m, False)
                _unison(morphed, osc, 0, phases, incs, voices, scratch, ACC, m, True)
                for j in range(m):
                    w = (pos + j) / chunk
                    old = scratch[OLD, j]
                    scratch[MIX, j] += (g0 + dg * (pos + j)) * (old + w * (scratch[ACC, j] - old))
            else:
                _unison(morphed, osc, 0, phases, incs, voices, scratch, ACC, m, True)
                for j in range(m):
                    scratch[MIX, j] += (g0 + dg * (pos + j)) * scratch[ACC, j]
        f11, f12, f21, f22 = ctl[C_SVF], ctl[C_SVF + 1], ctl[C_SVF + 2], ctl[C_SVF + 3]
        fb1, fb2, fc1, fc2, fd = ctl[C_SVF + 4], ctl[C_SVF + 5], ctl[C_SVF + 6], ctl[C_SVF + 7], ctl[C_SVF + 8]
        ic1, ic2, dc_x, dc_y = st[S_IC1], st[S_IC2], st[S_DC_X], st[S_DC_Y]
        rng = int(st[S_RNG])
        a_stage, a_x, a_start, a_level = int(st[S_AMP]), st[S_AMP + 1], st[S_AMP + 2], st[S_AMP + 3]
        m_stage, m_x = int(st[S_MOD]), st[S_MOD + 1]
        a_da, a_dd, a_s, a_dr = ctl[C_ENV], ctl[C_ENV + 1], ctl[C_ENV + 2], ctl[C_ENV + 3]
        m_da, m_dd, m_s, m_dr = ctl[C_ENV + 4], ctl[C_ENV + 5], ctl[C_ENV + 6], ctl[C_ENV + 7]
        n0, dn = ctl[C_N_0], (ctl[C_N_1] - ctl[C_N_0]) / chunk
        noisy = n0 != 0.0 or dn != 0.0  # the noise sequence only advances while noise is mixed in
        l0, dl = ctl[C_LFO0], (ctl[C_LFO1] - ctl[C_LFO0]) / chunk
        v0, dv = ctl[C_VOL0], (ctl[C_VOL1] - ctl[C_VOL0]) / chunk
        to_amp = ctl[C_TO_AMP]
        # the recursive chains per sample: noise, filter, DC blocker, envelopes (independent of each other,
        # so in one loop the CPU overlaps them); the signal and the amplitude envelope go to scratch
        for j in range(m):
            k = pos + j
            x = scratch[MIX, j]
            if noisy:
                rng ^= (rng << 13) & 0xFFFFFFFF
                rng ^= rng >> 17
                rng ^= (rng << 5) & 0xFFFFFFFF
                x += (n0 + dn * k) * (rng * (2.0 / 4294967296.0) - 1.0)
            v2 = fc1 * ic1 + fc2 * ic2 + fd * x  # state-variable low-pass (Simper / Zavalishin), state-space form
            ic1, ic2 = f11 * ic1 + f12 * ic2 + fb1 * x, f21 * ic1 + f22 * ic2 + fb2 * x
            y = v2 - dc_x + dc_r * dc_y  # DC blocker
            dc_x = v2
            dc_y = y
            a_level, a_stage, a_x = _env_tick(a_stage, a_x, a_start, a_da, a_dd, a_s, a_dr)
            m_stage, m_x = _env_step(m_stage, m_x, m_da, m_dd, m_dr)
            scratch[ACC, j] = y
            scratch[OLD, j] = a_level
        # then what has no recursion, in a loop LLVM vectorizes (indices from 0: no negative-index
        # wrap-around per sample): gain ramps, LFO tremolo, soft clip
        dst = out[start + i : start + i + m]
        for j in range(m):
            k = np.int32(pos + j)  # (int32 -> double converts as a vector on AVX2; int64 lane by lane)
            gain = scratch[OLD, j] * (v0 + dv * k) * (1.0 - to_amp * (1.0 - (l0 + dl * k)) * 0.5)
            dst[j] = softclip(scratch[ACC, j] * gain)
        st[S_IC1], st[S_IC2], st[S_DC_X], st[S_DC_Y] = ic1, ic2, dc_x, dc_y
        st[S_AMP], st[S_AMP + 1], st[S_AMP + 3] = float(a_stage), a_x, a_level
        st[S_MOD], st[S_MOD + 1] = float(m_stage), m_x
        st[S_MOD + 3] = _env_value(st, S_MOD, m_s)
        st[S_RNG] = float(rng)
        st[S_LFO_PHASE] = (st[S_LFO_PHASE] + m * ctl[C_LFO_STEP]) % 1.0
        st[S_CHUNK_POS] = float((pos + m) % chunk)
        i += m


@numba.njit(cache=True, nogil=True, _nrt=False)
def note_on(st: np.ndarray, ctl: np.ndarray, phases: np.ndarray, design: np.ndarray, midi_note: float) -> None:
    """Trigger a note. From silence the voice restarts cleanly (phases, LFO, filter, control chunk);
    while sounding it retriggers the envelopes from their current level and glides to the note."""
    st[S_NOTE_TARGET] = midi_note
    if st[S_AMP] == STAGE_IDLE:
        st[S_FRESH] = 1.0  # parameters and gains jump to their targets: nothing is sounding
        st[S_NOTE] = midi_note
        st[S_CHUNK_POS] = 0.0
        st[S_LFO_PHASE] = 0.0
        for i in (S_IC1, S_IC2, S_DC_X, S_DC_Y):
            st[i] = 0.0
        for osc in range(2):
            for u in range(phases.shape[1]):
                phases[osc, u] = (u * design[D_PHASE_STEP]) % 1.0
    gate(st, ctl, True)


@numba.njit(cache=True, nogil=True, _nrt=False)
def set_target(wire: Arr, perm: Arr, perm_buf: Arr, spec: Arr, target: Arr, st: Arr) -> None:
    """New target parameters from `wire` [24] (normalized, wire order): permuted into `perm_buf`, then
    clamped and snapped into `target` (kernel order); the smoothing goes on towards them."""
    for i in range(perm.shape[0]):
        perm_buf[i] = wire[perm[i]]
    snap_into(perm_buf, spec, target)
    st[S_SETTLED] = 0.0


@numba.njit(cache=True, nogil=True, _nrt=False)
def set_note(st: Arr, midi_note: float) -> None:
    """Retune without retriggering (a glide while sounding; at once while idle)."""
    st[S_NOTE_TARGET] = midi_note
    if st[S_AMP] == STAGE_IDLE:
        st[S_NOTE] = midi_note


@numba.njit(cache=True, nogil=True, _nrt=False)
def stream_block(
    st: Arr, ctl: Arr, phases: Arr, incs: Arr, smooth: Arr, target: Arr, tables: Arr, morphed: Arr, key: Arr,
    scratch: Arr, spec: Arr, design: Arr, out: Arr, n: int, rate: float,
) -> None:  # fmt: skip
    """A streaming voice's next block into out[:n]: silence (no DSP) while idle with the gate closed."""
    if st[S_AMP] == STAGE_IDLE and st[S_GATE] == 0:
        for i in range(n):
            out[i] = 0.0
        return
    render(st, ctl, phases, incs, smooth, target, tables, morphed, key, scratch, spec, design, out, 0, n, rate)


@numba.njit(cache=True, nogil=True)
def white_noise(seeds: np.ndarray, out: np.ndarray) -> None:
    """out[b] = the kernel's noise sequence (xorshift32, uniform in [-1, 1)) for seed b."""
    for b in range(out.shape[0]):
        rng = int(seeds[b])
        for i in range(out.shape[1]):
            rng ^= (rng << 13) & 0xFFFFFFFF
            rng ^= rng >> 17
            rng ^= (rng << 5) & 0xFFFFFFFF
            out[b, i] = rng * (2.0 / 4294967296.0) - 1.0


@numba.njit(cache=True, nogil=True)
def render_patches(
    params: Arr, notes: Arr, off_sample: int, rate: float, seeds: Arr, tables: Arr, spec: Arr, design: Arr,
    chunk: int, n_unison: int, out: Arr, first: int, step: int,
) -> None:  # fmt: skip
    """Render rows first, first + step, ... of `params` [B, 24] at `notes` [B] into `out` [B, N] (float32).

    Releases the GIL: callers run interleaved row sets in several Python threads."""
    n_samples = out.shape[1]
    for b in range(first, params.shape[0], step):
        st = np.zeros(N_STATE)
        ctl = np.zeros(N_CONTROL)
        phases = np.zeros((2, n_unison))
        incs = np.zeros((2, n_unison))
        smooth = np.zeros(params.shape[1])
        target = np.zeros(params.shape[1])
        morphed = np.zeros((2, 2, 2 * (tables.shape[2] - 1)), dtype=np.float32)
        key = np.full((2, 2), -1.0)
        scratch = np.zeros((3, chunk))
        row = out[b]
        st[S_RNG] = float(seeds[b])
        st[S_FRESH] = 1.0
        st[S_SMOOTH] = 1.0
        st[S_GLIDE] = 1.0
        snap_into(params[b], spec, target)
        note_on(st, ctl, phases, design, notes[b])
        held = min(off_sample, n_samples)
        render(st, ctl, phases, incs, smooth, target, tables, morphed, key, scratch, spec, design, row, 0, held, rate)
        if held < n_samples:
            gate(st, ctl, False)
            rest = n_samples - held
            render(
                st,
                ctl,
                phases,
                incs,
                smooth,
                target,
                tables,
                morphed,
                key,
                scratch,
                spec,
                design,
                row,
                held,
                rest,
                rate,
            )
