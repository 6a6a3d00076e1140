"""synth.render.render_batch: shape, determinism, no NaN/Inf on [0,1]^24, band-limiting, DC, clipping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synth.params import N_PARAMS, PARAM_INDEX, default_vector
from synth.render import render_batch

RATE = 16000
BACKENDS = pytest.mark.parametrize("backend", ["torch", "kernel"])


def patch(**values: float) -> torch.Tensor:
    x = default_vector()
    for name, value in values.items():
        x[PARAM_INDEX[name]] = value
    return torch.tensor(x).unsqueeze(0)


# a plain sustained tone: no modulation, open filter, flat envelope, low volume (tanh stays linear)
PLAIN = dict(
    osc2_level=0.0,
    noise_level=0.0,
    unison_voices=0.0,
    filter_cutoff=1.0,
    filter_resonance=0.0,
    filter_env_amount=0.5,
    amp_attack=0.0,
    amp_sustain=1.0,
    lfo_amount=0.0,
    master_volume=0.05,
)


@BACKENDS
def test_shape_dtype_and_range(backend: str) -> None:
    params = torch.rand(5, N_PARAMS, generator=torch.Generator().manual_seed(1))
    audio = render_batch(params, torch.tensor([40.0, 50.0, 60.0, 70.0, 80.0]), duration_s=0.25, backend=backend)
    assert audio.shape == (5, 4000) and audio.dtype == torch.float32
    assert float(audio.abs().max()) <= 1.0


@BACKENDS
def test_deterministic_for_a_seed_and_noise_follows_the_seed(backend: str) -> None:
    params = patch(noise_level=0.8, unison_voices=1.0)
    note = torch.tensor([60.0])
    a = render_batch(params, note, seed=3, backend=backend)
    assert torch.equal(a, render_batch(params, note, seed=3, backend=backend))
    assert not torch.equal(a, render_batch(params, note, seed=4, backend=backend))


@BACKENDS
def test_noise_depends_on_seed_and_row_only(backend: str) -> None:
    noisy = patch(noise_level=1.0, osc1_level=0.0)
    small = render_batch(noisy.repeat(2, 1), torch.full((2,), 60.0), duration_s=0.05, backend=backend)
    large = render_batch(noisy.repeat(5, 1), torch.full((5,), 60.0), duration_s=0.05, backend=backend)
    assert torch.equal(small, large[:2])
    assert not torch.equal(large[0], large[1])


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="params_0to1"):
        render_batch(torch.zeros(2, 23), torch.zeros(2))
    with pytest.raises(ValueError, match="midi_notes"):
        render_batch(torch.zeros(2, N_PARAMS), torch.zeros(3))
    with pytest.raises(ValueError, match="duration_s"):
        render_batch(torch.zeros(1, N_PARAMS), torch.zeros(1), duration_s=0.0)
    with pytest.raises(ValueError, match="backend"):
        render_batch(torch.zeros(1, N_PARAMS), torch.zeros(1), backend="cuda-magic")  # type: ignore[arg-type]


def test_auto_backend_picks_torch_for_gradients_and_the_kernel_otherwise() -> None:
    params = patch(noise_level=0.0)
    note = torch.tensor([60.0])
    assert torch.equal(render_batch(params, note), render_batch(params, note, backend="kernel"))
    with_grad = render_batch(params.clone().requires_grad_(True), note)
    assert with_grad.requires_grad
    assert torch.allclose(with_grad.detach(), render_batch(params, note, backend="torch"))


@BACKENDS
def test_no_nan_or_inf_on_corners_and_random_points(backend: str) -> None:
    gen = torch.Generator().manual_seed(0)
    corners = torch.stack([torch.zeros(N_PARAMS), torch.ones(N_PARAMS)])
    alternating = torch.tensor([[i % 2 for i in range(N_PARAMS)], [1 - i % 2 for i in range(N_PARAMS)]])
    random_corners = torch.randint(0, 2, (12, N_PARAMS), generator=gen)
    params = torch.cat([corners, alternating.float(), random_corners.float(), torch.rand(16, N_PARAMS, generator=gen)])
    notes = torch.tensor([0.0, 127.0] * (params.shape[0] // 2))
    for note_off_s in (None, 0.1):
        audio = render_batch(params, notes, duration_s=0.3, note_off_s=note_off_s, backend=backend)
        assert bool(torch.isfinite(audio).all())
        assert float(audio.abs().max()) <= 1.0


@BACKENDS
@pytest.mark.parametrize("wave", [0.0, 1 / 3, 0.5, 2 / 3, 1.0])
def test_no_aliasing_at_note_96(wave: float, backend: str) -> None:
    """Energy off the harmonic series of C7 (2093 Hz at 16 kHz) stays below -60 dB."""
    audio = render_batch(patch(**PLAIN, osc1_wave=wave), torch.tensor([96.0]), duration_s=1.0, backend=backend)[
        0
    ].numpy()
    seg = audio[RATE // 4 :].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(seg * np.blackman(len(seg)))) ** 2
    freqs = np.fft.rfftfreq(len(seg), 1 / RATE)
    f0 = 440.0 * 2 ** ((96 - 69) / 12)
    harmonic = np.abs(freqs / f0 - np.round(freqs / f0)) * f0 < 30.0
    harmonic &= np.round(freqs / f0) >= 1
    off = spectrum[~harmonic & (freqs > 40.0)].sum() / spectrum.sum()
    assert 10 * np.log10(off + 1e-30) < -60.0


@BACKENDS
def test_dc_free_and_soft_clipped(backend: str) -> None:
    loud = patch(**{**PLAIN, "master_volume": 1.0, "osc1_level": 1.0, "osc2_level": 1.0, "osc1_wave": 2 / 3})
    audio = render_batch(loud, torch.tensor([45.0]), duration_s=1.0, backend=backend)[0]
    tail = audio[RATE // 2 :]
    assert float(audio.abs().max()) <= 1.0
    assert float(tail.abs().max()) > 0.7  # really driven into the clipper
    assert abs(float(tail.mean())) < 0.01 * float(tail.pow(2).mean().sqrt())


@BACKENDS
def test_unison_detune_and_voice_count_change_the_sound(backend: str) -> None:
    base = dict(PLAIN, osc1_wave=1 / 3, unison_detune=0.6)
    one = render_batch(patch(**{**base, "unison_voices": 0.0}), torch.tensor([57.0]), backend=backend)
    seven = render_batch(patch(**{**base, "unison_voices": 1.0}), torch.tensor([57.0]), backend=backend)
    assert float((one - seven).abs().max()) > 0.01
    # a snapped parameter: 0.95 and 1.0 both mean 7 voices
    assert torch.equal(
        seven, render_batch(patch(**{**base, "unison_voices": 0.95}), torch.tensor([57.0]), backend=backend)
    )


@BACKENDS
def test_release_after_note_off_decays_to_silence(backend: str) -> None:
    params = patch(**{**PLAIN, "amp_release": 0.2})  # ~5 ms release
    audio = render_batch(params, torch.tensor([60.0]), duration_s=0.5, note_off_s=0.2, backend=backend)[0]
    assert float(audio[: int(0.2 * RATE)].abs().max()) > 0.03
    assert float(audio[int(0.3 * RATE) :].abs().max()) < 1e-6


def test_render_batch_from_several_threads_at_once() -> None:
    """The parallel kernel is shared: concurrent callers must neither crash nor mix results."""
    from concurrent.futures import ThreadPoolExecutor

    params = torch.rand(16, N_PARAMS, generator=torch.Generator().manual_seed(5))
    notes = torch.full((16,), 48.0)
    want = render_batch(params, notes, duration_s=0.1)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: render_batch(params, notes, duration_s=0.1), range(8)))
    assert all(torch.equal(r, want) for r in results)


def _render_in_child(seed: int) -> float:
    return float(
        render_batch(torch.rand(4, N_PARAMS, generator=torch.Generator().manual_seed(seed)), torch.full((4,), 50.0))
        .abs()
        .sum()
    )


def test_a_forked_child_can_render_after_the_parent_did() -> None:
    import multiprocessing

    render_batch(torch.rand(4, N_PARAMS), torch.full((4,), 50.0))  # the parent's threads have run
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.map(_render_in_child, [1]) == [_render_in_child(1)]


@pytest.mark.parametrize("threads", [2, 3])
def test_any_thread_count_gives_the_one_thread_audio(threads: int) -> None:
    """The kernel path splits the rows over torch's thread count: any count renders exactly what one
    thread renders (each row has its own seed and state)."""
    params = torch.rand(37, N_PARAMS, generator=torch.Generator().manual_seed(11))  # not a multiple of 2 or 3
    notes = torch.linspace(36.0, 84.0, 37)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        want = render_batch(params, notes, duration_s=0.1)
        torch.set_num_threads(threads)
        got = render_batch(params, notes, duration_s=0.1)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(got, want)
