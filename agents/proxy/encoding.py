"""The proxy's input encoding (torch, differentiable): what the network sees of a patch and a note.

Input: normalized Serum-lite parameters [B, 24] (wire order) and MIDI notes [B]. Output: the
feature blocks `agents.proxy.model.Proxy.encode` concatenates: the parameters in [-1, 1], the note's
register, the soft pitch classes of the note and of oscillator 2 (`pitch_class`), optionally gains
on a log scale (`log_level`, `harmonic_gains`) and the envelopes at the snapshot frames
(`envelope_inputs`); and, on the output side, `rotate_chroma` (the "rotate" chroma head).
`agents.proxy.kernels` computes the same in numba for the no-grad CPU path;
the tests hold the two together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from synth.dsp.constants import ENV_CURVE
from synth.params import N_PARAMS, PARAM_INDEX, PARAMS

NOTE_CENTER = 60.0  # the note enters as (note - NOTE_CENTER) / NOTE_SCALE
NOTE_SCALE = 24.0
OSC2_SEMIS = PARAM_INDEX["osc2_semitones"]
OSC2_FINE = PARAM_INDEX["osc2_fine"]
N_INPUTS = N_PARAMS + 1 + 12 + 12  # without the optional log-level and envelope inputs
# The descriptors are logarithmic (dB, log-mel), so a proxy with `log_levels` also sees gains on a log
# scale (floor -60 dB): a -30 dB noise floor under a tone is a small step in noise_level but a large one
# in flatness and the upper MFCCs. The gains: the audio gain parameters, and per oscillator the gains its
# wave morph gives the harmonics above the fundamental and the even ones (the morph crossfades sine ->
# saw -> square -> triangle: harmonics grow from 0 after the sine, the even ones fall to 0 at the square).
LOG_LEVEL_NAMES = ("osc1_level", "osc2_level", "noise_level", "amp_sustain", "master_volume")
LOG_LEVEL_COLUMNS = np.array([PARAM_INDEX[n] for n in LOG_LEVEL_NAMES], dtype=np.int64)
WAVE_COLUMNS = np.array([PARAM_INDEX["osc1_wave"], PARAM_INDEX["osc2_wave"]], dtype=np.int64)
N_LOG_INPUTS = len(LOG_LEVEL_COLUMNS) + 2 * len(WAVE_COLUMNS)
LOG_LEVEL_FLOOR = 1e-3

# Envelope inputs: the amp envelope's level (log scale), the mod envelope's level and the cutoff it moves
# (normalized) at each snapshot time, with the gate held (`synth.dsp.envelope`, closed form). A pluck's
# level and brightness at the snapshot are a product of exponentials of its time parameters that a
# small MLP approximates poorly; per time: 3 inputs.
ENVELOPE_NAMES = (
    "amp_attack",
    "amp_decay",
    "amp_sustain",
    "mod_attack",
    "mod_decay",
    "mod_sustain",
    "filter_cutoff",
    "filter_env_amount",
)
ENVELOPE_COLUMNS = np.array([PARAM_INDEX[n] for n in ENVELOPE_NAMES], dtype=np.int64)
_TIME_NAMES = ("amp_attack", "amp_decay", "mod_attack", "mod_decay")
if any(PARAMS[PARAM_INDEX[n]].curve != "log" for n in (*_TIME_NAMES, "filter_cutoff")):
    raise RuntimeError("agents.proxy.encoding assumes log-scaled envelope times and cutoff")
_time = PARAMS[PARAM_INDEX["amp_attack"]]
if any((PARAMS[PARAM_INDEX[n]].low, PARAMS[PARAM_INDEX[n]].high) != (_time.low, _time.high) for n in _TIME_NAMES):
    raise RuntimeError("agents.proxy.encoding assumes one range for the four envelope times")
_cutoff, _amount = PARAMS[PARAM_INDEX["filter_cutoff"]], PARAMS[PARAM_INDEX["filter_env_amount"]]
# time_s = low * exp(x * log(high / low)); the moved cutoff in normalized units = x + octaves / span
# both paths: time low (s), log time ratio, cutoff span (oct), amount low, amount span (oct), curve
ENVELOPE_CONSTANTS = np.array(
    [
        _time.low,
        math.log(_time.high / _time.low),
        math.log2(_cutoff.high / _cutoff.low),
        _amount.low,
        _amount.high - _amount.low,
        ENV_CURVE,
    ],
    dtype=np.float32,
)
N_ENVELOPE_INPUTS_PER_TIME = 3


def check_shapes(params_0to1: Tensor, notes: Tensor) -> None:
    if params_0to1.ndim != 2 or params_0to1.shape[1] != N_PARAMS:
        raise ValueError(f"Proxy: params_0to1 must be [B, {N_PARAMS}], got {tuple(params_0to1.shape)}")
    if notes.ndim != 1 or notes.shape[0] != params_0to1.shape[0]:
        raise ValueError(f"Proxy: notes must be [B] with B={params_0to1.shape[0]}, got {tuple(notes.shape)}")


def pitch_class(notes: Tensor) -> Tensor:
    """[B] MIDI notes -> [B, 12] weights of the pitch classes C..B (1 at an integer note, linear between)."""
    classes = torch.arange(12, dtype=notes.dtype, device=notes.device)
    d = torch.remainder(notes.unsqueeze(1) - classes, 12.0)
    return torch.relu(1.0 - torch.minimum(d, 12.0 - d))


def oscillator_pitches(params_0to1: Tensor, notes: Tensor) -> Tensor:
    """[B, 24], [B] -> [B, 2]: the note, and oscillator 2's pitch (note + semitones + fine, MIDI)."""
    semis = torch.round(params_0to1[:, OSC2_SEMIS] * 48.0) - 24.0
    fine = params_0to1[:, OSC2_FINE] - 0.5  # +-50 cents
    return torch.stack([notes, notes + semis + fine], dim=1)


def log_level(gain: Tensor) -> Tensor:
    """Gains in [0, 1] -> [-1, 1] on a log scale: -1 at 0 (the -60 dB floor), 0 near -30 dB, 1 at 1."""
    floor = LOG_LEVEL_FLOOR
    return (torch.log(gain.clamp(0.0, 1.0) + floor) - np.log(floor)) * (2.0 / (np.log1p(floor) - np.log(floor))) - 1.0


def harmonic_gains(wave_0to1: Tensor) -> Tensor:
    """Wave morphs [B, W] (normalized) -> [B, 2W]: per oscillator, the gain of the harmonics above the
    fundamental (0 at the sine, 1 from the saw on) and of the even ones (0 at the sine, 1 at the saw,
    0 from the square on), relative to the saw's."""
    m = wave_0to1 * 3.0
    return torch.cat([m.clamp(0.0, 1.0), torch.minimum(m, 2.0 - m).clamp(0.0, 1.0)], dim=1)


def _held_envelope(params_0to1: Tensor, attack: int, decay: int, sustain: int, times: Tensor) -> Tensor:
    """Level [B, T] of an ADSR with the gate held, at `times` [T] s (`synth.dsp.envelope._held`)."""
    low, log_ratio, curve = float(ENVELOPE_CONSTANTS[0]), float(ENVELOPE_CONSTANTS[1]), float(ENVELOPE_CONSTANTS[5])
    a = (low * torch.exp(params_0to1[:, attack] * log_ratio)).unsqueeze(1)
    d = (low * torch.exp(params_0to1[:, decay] * log_ratio)).unsqueeze(1)
    s = params_0to1[:, sustain].unsqueeze(1)
    t = times.unsqueeze(0)
    x = ((t - a) / d).clamp(0.0, 1.0)
    return torch.where(t < a, t / a, s + (1.0 - s) * (1.0 - x) ** curve)


def envelope_inputs(params_0to1: Tensor, times_s: Sequence[float]) -> Tensor:
    """[B, 24] -> [B, 3T]: at each of the T times, the amp envelope's level (`log_level`), then the mod
    envelope's level (* 2 - 1), then the cutoff it moves (filter_cutoff + env amount in octaves x mod
    level, normalized and clipped to [0, 1], * 2 - 1); grouped by kind."""
    c = {n: PARAM_INDEX[n] for n in ENVELOPE_NAMES}
    times = torch.tensor(list(times_s), dtype=params_0to1.dtype, device=params_0to1.device)
    amp = _held_envelope(params_0to1, c["amp_attack"], c["amp_decay"], c["amp_sustain"], times)
    mod = _held_envelope(params_0to1, c["mod_attack"], c["mod_decay"], c["mod_sustain"], times)
    span, amount_low, amount_span = (float(v) for v in ENVELOPE_CONSTANTS[2:5])
    octaves = (amount_low + params_0to1[:, c["filter_env_amount"]] * amount_span).unsqueeze(1) * mod
    cutoff = (params_0to1[:, c["filter_cutoff"]].unsqueeze(1) + octaves / span).clamp(0.0, 1.0)
    return torch.cat([log_level(amp), mod * 2.0 - 1.0, cutoff * 2.0 - 1.0], dim=1)


def describe_io(log_levels: bool, envelope: bool, rotate: bool) -> dict[str, str]:
    """`proxy.yaml`'s human-readable `input` and `output` lines for a proxy with these options."""
    inputs = f"params*2-1 (24), (note-{NOTE_CENTER:g})/{NOTE_SCALE:g}, pitch classes of note, osc2 (2x12)"
    if log_levels:
        inputs += f", log gains of {', '.join(LOG_LEVEL_NAMES)}, osc harmonics, osc even harmonics"
    if envelope:
        inputs += ", amp envelope (log), mod envelope and the cutoff it moves at envelope_times_s"
    output = "z-normalized per-frame mean descriptors; predict() de-normalizes with out_mean/out_std"
    if rotate:
        output += "; chroma from 2 x 12 outputs relative to the note and osc2, rotated in place"
    return {"input": inputs, "output": output}


def rotate_chroma(relative: Tensor, pitch: Tensor) -> Tensor:
    """[B, 12] chroma relative to a pitch, [B] pitches (MIDI, any real) -> [B, 12] chroma in place.

    At an integer pitch i: out[c] = relative[(c - i) mod 12] (a rotation); between two, the blend of the
    neighbouring rotations (the weights of `pitch_class`). A sound transposed by a semitone has its
    chroma rotated by one bin, so the network predicts the chroma relative to each oscillator's pitch
    and this puts it in place: the product of timbre and pitch class a plain MLP approximates poorly."""
    base = torch.floor(pitch)
    frac = (pitch - base).unsqueeze(1)
    index = torch.remainder(torch.arange(12, device=pitch.device) - base.long().unsqueeze(1), 12)
    low = torch.gather(relative, 1, index)
    high = torch.gather(relative, 1, torch.remainder(index - 1, 12))
    return torch.lerp(low, high, frac)
