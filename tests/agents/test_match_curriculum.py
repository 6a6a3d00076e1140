"""Curriculum stages, disjoint target streams, and stage advancement."""

from __future__ import annotations

import numpy as np
import pytest

from agents.match.curriculum import (
    N_STAGES,
    Curriculum,
    TargetSampler,
    active_mask,
    held_out_presets,
    stage_params,
    validation_presets,
)
from synth.params import N_PARAMS


def test_stages_are_cumulative_and_the_last_covers_all_parameters() -> None:
    sizes = [int(active_mask(s).sum()) for s in range(1, N_STAGES + 1)]
    assert sizes == sorted(sizes) and len(set(sizes)) == N_STAGES
    assert sizes[-1] == N_PARAMS
    assert set(stage_params(1)) <= set(stage_params(2))
    assert "filter_cutoff" in stage_params(2) and "filter_cutoff" not in stage_params(1)
    assert "amp_attack" in stage_params(3) and "unison_detune" in stage_params(4) and "lfo_target" in stage_params(5)


def test_bad_stage_is_rejected() -> None:
    with pytest.raises(ValueError, match="stage"):
        active_mask(0)
    with pytest.raises(ValueError, match="stage"):
        active_mask(6)


def test_held_out_set_is_fixed_and_never_sampled_in_training() -> None:
    a, b = held_out_presets(50, seed=7), held_out_presets(50, seed=7)
    np.testing.assert_array_equal(a, b)
    factory = np.full((2, N_PARAMS), 0.5, np.float32)
    train = TargetSampler(seed=7, factory_0to1=factory, factory_prob=0.3).sample(2000)
    val = validation_presets(50, seed=7)
    for other in (train, val):
        dist = np.abs(a[:, None, :] - other[None, :, :]).sum(-1)
        assert dist.min() > 1e-3
    assert ((train == 0.5).all(axis=1)).mean() == pytest.approx(0.3, abs=0.05)


def test_curriculum_advances_under_threshold_and_stops_at_final_stage() -> None:
    cur = Curriculum(stage=1, thresholds=(0.3, 0.4, 0.5, 0.6))
    assert not cur.update(0.35) and cur.stage == 1
    assert cur.update(0.2) and cur.stage == 2
    for _ in range(5):
        cur.update(0.0)
    assert cur.stage == N_STAGES and not cur.update(0.0)
    with pytest.raises(ValueError, match="thresholds"):
        Curriculum(stage=1, thresholds=(0.1,))
