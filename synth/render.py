"""Batched Serum-lite renderer: parameter vectors -> audio.

Input: params_0to1 [B, 24] (wire order of `synth.params`), MIDI notes [B] (fractional allowed).
Output: audio [B, N] in [-1, 1], N = round(duration_s * sample_rate_hz); float32 (on the torch path,
the float dtype of the params).

Signal flow per patch: two morphing wavetable oscillators (unison 1-7, osc2 transposed) + white
noise -> resonant low-pass whose cutoff follows the mod envelope and the LFO, with a DC blocker ->
amp ADSR x LFO tremolo x master volume -> soft clip. Deterministic for a seed (it only drives the noise).

Two paths, chosen by `backend`:
- "torch": differentiable in the continuous parameters, any device; the kernel's filter solved in
  closed form per 2 ms control chunk (`synth.dsp.filter`), per-sample LFO and pitch.
- "kernel": the streaming voice's numba kernel (`synth.dsp.kernel`), rows split over
  torch.get_num_threads() threads, CPU, no gradient, ~25x faster; the LFO is interpolated and the
  pitch stepped per control chunk.
- "auto" (default): "torch" when a gradient is wanted (params require grad and grad mode is on)
  or the params are not on the CPU, else "kernel".
The two agree within the spectral tolerance stated in tests/synth/test_render_paths.py. Both draw
the same noise samples for the same seed: row b's noise depends only on (seed, b), not on the batch
size or the other rows.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from synth.dsp.constants import FILTER_MAX_NYQUIST, FILTER_MIN_HZ, OSC_FADE_NYQUIST
from synth.dsp.envelope import adsr
from synth.dsp.fast import render_patches
from synth.dsp.filter import chunk_starts, dc_block, svf_lowpass
from synth.dsp.kernel import white_noise
from synth.dsp.lfo import route
from synth.dsp.oscillator import elapsed_s, unison_bank, unison_layout
from synth.dsp.physical import to_physical
from synth.dsp.voice_state import control_chunk, noise_seeds
from synth.dsp.wavetable import mip_level, patch_tables
from synth.params import N_PARAMS, PARAM_INDEX

_I = PARAM_INDEX
Backend = Literal["auto", "torch", "kernel"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "kernel")


def midi_to_hz(midi_notes: Tensor) -> Tensor:
    return 440.0 * torch.exp2((midi_notes - 69.0) / 12.0)


def softclip(x: Tensor) -> Tensor:
    """tanh-like rational soft clip, exactly +-1 with zero slope from |x| = 3 on (twin of kernel.softclip)."""
    x = x.clamp(-3.0, 3.0)
    return x * (27.0 + x * x) / (27.0 + 9.0 * x * x)


def _check(params_0to1: Tensor, midi_notes: Tensor, sample_rate_hz: float, duration_s: float) -> None:
    if params_0to1.ndim != 2 or params_0to1.shape[1] != N_PARAMS:
        raise ValueError(f"render_batch: params_0to1 must be [B, {N_PARAMS}], got {tuple(params_0to1.shape)}")
    if midi_notes.ndim != 1 or midi_notes.shape[0] != params_0to1.shape[0]:
        raise ValueError(
            f"render_batch: midi_notes must be [B] with B={params_0to1.shape[0]}, got {tuple(midi_notes.shape)}"
        )
    if sample_rate_hz <= 0 or duration_s <= 0:
        raise ValueError(f"render_batch: sample_rate_hz and duration_s must be > 0, got {sample_rate_hz}, {duration_s}")
    if not bool(torch.isfinite(params_0to1).all()) or not bool(torch.isfinite(midi_notes).all()):
        raise ValueError("render_batch: params_0to1 and midi_notes must be finite")


def _oscillator(
    morph: Tensor, base_hz: Tensor, routing_top: Tensor, detune: Tensor, voices: Tensor, elapsed: Tensor, rate: float
) -> Tensor:
    """One unison oscillator [B, N], band-limited for its highest frequency and faded out near Nyquist."""
    top_hz = base_hz * torch.exp2(detune / 2400.0) * routing_top
    table = patch_tables(morph, mip_level(top_hz, rate))
    offsets, gains = unison_layout(voices, detune)
    lo, hi = OSC_FADE_NYQUIST
    fade = ((hi - top_hz.detach() / (0.5 * rate)) / (hi - lo)).clamp(0.0, 1.0)
    return unison_bank(table, base_hz, elapsed, offsets, gains * fade.unsqueeze(1))


def render_batch(
    params_0to1: Tensor,
    midi_notes: Tensor,
    *,
    sample_rate_hz: int = 16000,
    duration_s: float = 0.5,
    note_off_s: float | None = None,
    seed: int | None = 0,
    backend: Backend = "auto",
) -> Tensor:
    """Render B patches; the gate is on from 0 to `note_off_s` (None: the whole render)."""
    _check(params_0to1, midi_notes, sample_rate_hz, duration_s)
    if backend not in BACKENDS:
        raise ValueError(f"render_batch: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    wants_grad = params_0to1.requires_grad and torch.is_grad_enabled()
    if backend == "kernel" or (backend == "auto" and not wants_grad and params_0to1.device.type == "cpu"):
        audio = render_patches(
            params_0to1.detach().cpu().numpy(),
            midi_notes.detach().cpu().numpy(),
            sample_rate_hz=float(sample_rate_hz),
            n_samples=max(1, round(duration_s * sample_rate_hz)),
            note_off_s=note_off_s,
            seed=seed,
        )
        return torch.from_numpy(audio).to(params_0to1.device)
    return _render_torch(params_0to1, midi_notes, sample_rate_hz, duration_s, note_off_s, seed)


def _render_torch(
    params_0to1: Tensor,
    midi_notes: Tensor,
    sample_rate_hz: float,
    duration_s: float,
    note_off_s: float | None,
    seed: int | None,
) -> Tensor:
    dtype = params_0to1.dtype if params_0to1.is_floating_point() else torch.float32
    device = params_0to1.device
    params_0to1 = params_0to1.to(dtype)
    batch = params_0to1.shape[0]
    n_samples = max(1, round(duration_s * sample_rate_hz))
    rate = float(sample_rate_hz)
    v = to_physical(params_0to1)
    col = {name: v[:, i] for name, i in _I.items()}
    t_s = torch.arange(n_samples, device=device, dtype=dtype) / rate

    routing = route(t_s, col["lfo_rate"], col["lfo_amount"], col["lfo_target"])
    elapsed = elapsed_s(n_samples, rate, routing.pitch_ratio, batch, device)
    f1 = midi_to_hz(midi_notes.to(device=device, dtype=dtype))
    f2 = f1 * torch.exp2((col["osc2_semitones"] + col["osc2_fine"] / 100.0) / 12.0)
    voices, detune = col["unison_voices"], col["unison_detune"]
    mix = col["osc1_level"].unsqueeze(1) * _oscillator(
        col["osc1_wave"], f1, routing.pitch_top, detune, voices, elapsed, rate
    )
    if params_0to1.requires_grad or bool((col["osc2_level"] > 0).any()):
        osc2 = _oscillator(col["osc2_wave"], f2, routing.pitch_top, detune, voices, elapsed, rate)
        mix = mix + col["osc2_level"].unsqueeze(1) * osc2
    if params_0to1.requires_grad or bool((col["noise_level"] > 0).any()):
        noise_np = np.empty((batch, n_samples), dtype=np.float32)
        white_noise(noise_seeds(batch, seed), noise_np)  # the kernel's own sequence, sample for sample
        noise = torch.from_numpy(noise_np).to(device=device, dtype=dtype)
        mix = mix + col["noise_level"].unsqueeze(1) * noise

    chunk = control_chunk(rate)
    starts = chunk_starts(n_samples, chunk).to(device)
    # the mod envelope only moves the cutoff, which is set per control chunk: evaluate it there only
    mod_env = adsr(t_s[starts], col["mod_attack"], col["mod_decay"], col["mod_sustain"], col["mod_release"], note_off_s)
    octaves = col["filter_env_amount"].unsqueeze(1) * mod_env + routing.filter_octaves[:, starts]
    cutoff = (col["filter_cutoff"].unsqueeze(1) * torch.exp2(octaves)).clamp(
        FILTER_MIN_HZ, FILTER_MAX_NYQUIST * 0.5 * rate
    )
    filtered = dc_block(svf_lowpass(mix, cutoff, col["filter_resonance"], chunk, rate), rate)

    amp_env = adsr(t_s, col["amp_attack"], col["amp_decay"], col["amp_sustain"], col["amp_release"], note_off_s)
    gain = amp_env * routing.amp_gain * col["master_volume"].unsqueeze(1)
    return softclip(filtered * gain)
