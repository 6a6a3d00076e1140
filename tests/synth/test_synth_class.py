"""synth.synth.SerumLiteSynth: the seed's interface (param vector, render, presets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from synth.params import N_PARAMS, PARAM_INDEX, default_vector
from synth.presets import PresetError, factory_presets
from synth.render import render_batch
from synth.synth import SerumLiteSynth


def test_param_vector_round_trip_is_clamped_and_snapped() -> None:
    synth = SerumLiteSynth()
    assert torch.equal(synth.get_param_vector(), torch.from_numpy(default_vector()))
    x = torch.full((N_PARAMS,), 0.37)
    x[0] = 1.5
    synth.set_param_vector(x)
    got = synth.get_param_vector()
    assert got.dtype == torch.float32 and got.shape == (N_PARAMS,)
    assert float(got[0]) == 1.0
    assert float(got[PARAM_INDEX["unison_voices"]]) == pytest.approx(2 / 6)  # 0.37 * 6 -> 2 -> 3 voices
    assert float(got[PARAM_INDEX["filter_cutoff"]]) == pytest.approx(0.37)
    got[1] = 0.0  # a copy: the synth keeps its patch
    assert float(synth.get_param_vector()[1]) == pytest.approx(0.37)


def test_bad_vectors_are_rejected() -> None:
    synth = SerumLiteSynth()
    with pytest.raises(ValueError, match="24"):
        synth.set_param_vector(np.zeros(23))
    with pytest.raises(ValueError, match="finite"):
        synth.set_param_vector(np.full(N_PARAMS, np.nan))
    with pytest.raises(ValueError, match="sample_rate"):
        SerumLiteSynth(sample_rate=0)


def test_render_is_render_batch_of_the_current_patch() -> None:
    synth = SerumLiteSynth(sample_rate=16000, buffer_seconds=0.25)
    audio = synth.render(64)
    assert audio.shape == (4000,) and audio.dtype == torch.float32 and float(audio.abs().max()) > 0.01
    want = render_batch(synth.get_param_vector()[None], torch.tensor([64.0]), duration_s=0.25)[0]
    assert torch.equal(audio, want)
    assert synth.render(64, 0.1).shape == (1600,)


def test_presets_save_and_load(tmp_path: Path) -> None:
    synth = SerumLiteSynth()
    x = torch.rand(N_PARAMS, generator=torch.Generator().manual_seed(3))
    synth.set_param_vector(x)
    path = tmp_path / "mine.json"
    synth.save_preset(path, "mine", note=57, tags=("test",))
    other = SerumLiteSynth()
    preset = other.load_preset(path)
    assert preset.name == "mine" and preset.note == 57 and preset.tags == ("test",)
    assert torch.allclose(other.get_param_vector(), synth.get_param_vector(), atol=1e-6)
    path.write_text("{not json")
    with pytest.raises(PresetError, match="mine.json"):
        other.load_preset(path)


def test_every_factory_preset_renders_cleanly() -> None:
    synth = SerumLiteSynth()
    presets = factory_presets()
    assert len(presets) >= 8
    for name, preset in presets.items():
        synth.set_param_vector(preset.params_0to1)
        audio = synth.render(preset.note or 60, 1.0, note_off_s=0.6)
        assert bool(torch.isfinite(audio).all()) and float(audio.abs().max()) > 1e-3, name
