"""synth.stream.StreamingVoice: block rendering equals one-shot rendering, equals render_batch,
state carries across blocks, gate and glide work, bad input is named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synth.params import N_PARAMS, PARAM_INDEX, default_vector
from synth.render import render_batch
from synth.stream import StreamingVoice

RICH = dict(
    osc1_wave=0.3,
    osc1_level=0.7,
    osc2_level=0.4,
    osc2_semitones=0.5 + 12 / 48,
    unison_voices=1.0,
    unison_detune=0.4,
    noise_level=0.1,
    filter_cutoff=0.55,
    filter_resonance=0.5,
    filter_env_amount=0.7,
    amp_attack=0.2,
    amp_sustain=0.8,
    mod_decay=0.5,
    mod_sustain=0.3,
    lfo_amount=0.3,
    lfo_target=0.5,
    master_volume=0.6,
)


def params(**values: float) -> np.ndarray:
    x = default_vector()
    for name, value in values.items():
        x[PARAM_INDEX[name]] = value
    return x


def render_in_blocks(voice: StreamingVoice, sizes: list[int], total: int) -> np.ndarray:
    out = np.empty(total, dtype=np.float32)
    i = 0
    k = 0
    while i < total:
        n = min(sizes[k % len(sizes)], total - i)
        block = np.empty(n, dtype=np.float32)
        voice.process(block)
        out[i : i + n] = block
        i += n
        k += 1
    return out


@pytest.mark.parametrize("rate", [16000, 48000])
def test_blocks_of_any_size_match_the_one_shot_render(rate: int) -> None:
    """Tolerance: 1e-5 absolute (float32 output; the only difference is phase bookkeeping)."""
    total = rate // 2
    one = StreamingVoice(rate, total)
    one.set_params(params(**RICH))
    one.note_on(50)
    whole = np.empty(total, dtype=np.float32)
    one.process(whole)
    for sizes in ([256], [512], [100, 333, 1, 64]):
        voice = StreamingVoice(rate, 512)
        voice.set_params(params(**RICH))
        voice.note_on(50)
        blocks = render_in_blocks(voice, sizes, total)
        assert np.abs(blocks - whole).max() < 1e-5, sizes
    assert whole.std() > 0.01


def test_no_discontinuity_at_block_boundaries() -> None:
    voice = StreamingVoice(48000, 512)
    voice.set_params(params(**{**RICH, "noise_level": 0.0, "lfo_amount": 0.0}))
    voice.note_on(40)
    audio = render_in_blocks(voice, [512], 48000)
    steps = np.abs(np.diff(audio[4800:]))  # past the attack
    at_boundaries = steps[np.arange(512 - 4800 % 512 - 1, steps.size, 512)]
    assert at_boundaries.max() <= steps.max() and at_boundaries.max() < 4 * np.median(steps) + 0.02


def test_stream_equals_render_batch_for_the_same_patch_and_seed() -> None:
    """Same kernel, same noise seed: equal within 1e-5, with a note-off inside the render too."""
    x = params(**RICH)
    batch = render_batch(torch.tensor(x)[None], torch.tensor([57.0]), duration_s=0.5, note_off_s=0.3, seed=5)[0]
    voice = StreamingVoice(16000, 16000, seed=5)
    voice.set_params(x)
    voice.note_on(57)
    first = np.empty(4800, dtype=np.float32)
    voice.process(first)
    voice.note_off()
    rest = np.empty(3200, dtype=np.float32)
    voice.process(rest)
    assert np.abs(np.concatenate([first, rest]) - batch.numpy()).max() < 1e-5


def test_note_off_releases_to_silence_and_note_on_restarts() -> None:
    voice = StreamingVoice(16000, 256)
    voice.set_params(params(**{**RICH, "amp_release": 0.3}))  # ~12 ms
    voice.note_on(60)
    block = np.empty(256, dtype=np.float32)
    for _ in range(20):
        voice.process(block)
    assert voice.gate and voice.sounding and np.abs(block).max() > 0.01
    voice.note_off()
    for _ in range(10):
        voice.process(block)
    assert not voice.gate and not voice.sounding and np.abs(block).max() == 0.0
    voice.note_on(60)
    voice.process(block)
    assert voice.sounding


def _pitch_hz(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size), 8 * audio.size))
    return float(np.argmax(spectrum) * rate / (8 * audio.size))


def test_set_note_glides_without_retrigger() -> None:
    rate = 16000
    sine = params(osc1_wave=0.0, osc2_level=0.0, noise_level=0.0, filter_cutoff=1.0, amp_attack=0.0, amp_sustain=1.0)
    voice = StreamingVoice(rate, 4000, glide_s=0.05)
    voice.set_params(sine)
    voice.note_on(57)  # 220 Hz
    block = np.empty(4000, dtype=np.float32)
    voice.process(block)
    level_before = np.abs(block[-400:]).max()
    voice.set_note(69)  # 440 Hz
    voice.process(block)
    assert 57 < voice.note <= 69
    assert np.abs(block[:400]).max() > 0.9 * level_before  # no retrigger: the level holds
    voice.process(block)
    assert abs(_pitch_hz(block, rate) - 440.0) < 3.0


def test_process_allocates_nothing_in_steady_state() -> None:
    import tracemalloc

    voice = StreamingVoice(48000, 512)
    x = params(**RICH)
    voice.set_params(x)
    voice.note_on(48)
    block = np.empty(512, dtype=np.float32)
    for _ in range(20):
        voice.process(block)
        voice.set_params(x)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(200):
            voice.process(block)
            voice.set_params(x)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 512  # nothing kept
    assert peak - before < 1024  # and never a block-sized buffer (a 512-frame float32 block is 2 KiB)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="max_block_size"):
        StreamingVoice(48000, 0)
    voice = StreamingVoice(48000, 256)
    with pytest.raises(ValueError, match="shape"):
        voice.set_params(np.zeros(N_PARAMS - 1))
    with pytest.raises(ValueError, match="float32"):
        voice.process(np.zeros(256))
    with pytest.raises(ValueError, match="max_block_size"):
        voice.process(np.zeros(257, dtype=np.float32))


def test_random_parameter_frames_and_gates_stay_finite_and_bounded() -> None:
    """Corners and random frames every block, notes across the range, gates toggling: no NaN/Inf."""
    rng = np.random.default_rng(4)
    voice = StreamingVoice(48000, 256, param_smoothing_s=0.005)
    block = np.empty(256, dtype=np.float32)
    for i in range(300):
        frame = rng.integers(0, 2, N_PARAMS).astype(np.float64) if i % 3 == 0 else rng.random(N_PARAMS)
        voice.set_params(frame)
        if i % 25 == 0:
            voice.note_on(float(rng.integers(0, 128)))
        elif i % 25 == 20:
            voice.note_off()
        elif i % 7 == 0:
            voice.set_note(float(rng.uniform(0, 127)))
        voice.process(block)
        assert np.all(np.isfinite(block)) and np.abs(block).max() <= 1.0
