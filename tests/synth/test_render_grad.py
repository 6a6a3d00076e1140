"""render_batch is differentiable: a multi-resolution STFT loss has finite, non-zero gradients
with respect to every continuous parameter, on a patch where each of them matters."""

from __future__ import annotations

import torch

from synth.params import CONTINUOUS_INDICES, PARAM_INDEX, PARAM_NAMES, default_vector
from synth.render import render_batch


def mr_stft_loss(x: torch.Tensor, y: torch.Tensor, sizes: tuple[int, ...] = (256, 512, 1024)) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, summed over FFT sizes."""
    total = x.new_zeros(())
    for n_fft in sizes:
        window = torch.hann_window(n_fft)
        sx = torch.stft(x, n_fft, n_fft // 4, window=window, return_complex=True).abs() + 1e-7
        sy = torch.stft(y, n_fft, n_fft // 4, window=window, return_complex=True).abs() + 1e-7
        total = total + torch.linalg.norm(sx - sy) / torch.linalg.norm(sy) + (sx.log() - sy.log()).abs().mean()
    return total


def _patch(**values: float) -> torch.Tensor:
    x = default_vector()
    for name, value in values.items():
        x[PARAM_INDEX[name]] = value
    return torch.tensor(x)


# every continuous parameter audible: two detuned oscillators, noise, a moving resonant filter,
# short envelopes with a note-off inside the render, a vibrato (LFO on pitch)
GRAD_PATCH = dict(
    osc1_wave=0.4,
    osc1_level=0.6,
    osc2_wave=0.55,
    osc2_level=0.5,
    osc2_semitones=0.5 + 7 / 48,
    osc2_fine=0.6,
    unison_voices=2 / 6,
    unison_detune=0.5,
    noise_level=0.3,
    filter_cutoff=0.55,
    filter_resonance=0.5,
    filter_env_amount=0.7,
    amp_attack=0.35,
    amp_decay=0.4,
    amp_sustain=0.6,
    amp_release=0.4,
    mod_attack=0.35,
    mod_decay=0.4,
    mod_sustain=0.4,
    mod_release=0.4,
    lfo_rate=0.6,
    lfo_amount=0.1,
    lfo_target=0.0,
    master_volume=0.6,
)


def test_every_continuous_parameter_has_a_finite_nonzero_gradient() -> None:
    note = torch.tensor([50.0])
    target = render_batch(_patch(**GRAD_PATCH).unsqueeze(0), note, duration_s=0.4, note_off_s=0.25)
    shifted = {k: min(0.95, v + 0.07) if PARAM_INDEX[k] in CONTINUOUS_INDICES else v for k, v in GRAD_PATCH.items()}
    params = _patch(**shifted).unsqueeze(0).requires_grad_(True)
    audio = render_batch(params, note, duration_s=0.4, note_off_s=0.25)
    mr_stft_loss(audio, target).backward()
    grad = params.grad[0]
    assert bool(torch.isfinite(grad).all())
    zero = [PARAM_NAMES[i] for i in CONTINUOUS_INDICES if float(grad[i].abs()) < 1e-6]
    assert not zero, f"no gradient for {zero}"


def test_lfo_amount_on_filter_and_amplitude_has_a_gradient() -> None:
    note = torch.tensor([55.0])
    for target_0to1 in (0.5, 1.0):  # filter, amplitude
        base = dict(GRAD_PATCH, lfo_target=target_0to1, lfo_amount=0.2)
        target = render_batch(_patch(**base).unsqueeze(0), note, duration_s=0.3)
        params = _patch(**dict(base, lfo_amount=0.3)).unsqueeze(0).requires_grad_(True)
        mr_stft_loss(render_batch(params, note, duration_s=0.3), target).backward()
        g = params.grad[0, PARAM_INDEX["lfo_amount"]]
        assert bool(torch.isfinite(g)) and float(g.abs()) > 1e-6
