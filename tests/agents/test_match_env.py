"""The preset-matching environment on the test doubles: checkers, episode rules, reward, actions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from agents.match.actions import GROUP_WIDTH, MODULE_GROUPS, N_SELECTOR, ActionCodec
from agents.match.curriculum import active_mask, start_vectors
from agents.match.engine import MatchEngine
from agents.match.env import PresetMatchEnv, make_env
from settings.loader import Settings, with_overrides
from synth.params import N_PARAMS, PARAM_INDEX, default_vector, snap_vector
from tests.agents.test_match_doubles import FakeHearing, FakeRenderer


def _settings(**match: object) -> Settings:
    return with_overrides(Settings(), {f"match.{k}": v for k, v in match.items()})


def _engine(n: int = 4, time_limit: int | None = None, **match: object) -> MatchEngine:
    return MatchEngine(n, _settings(**match), renderer=FakeRenderer(), hearing=FakeHearing(), time_limit=time_limit)


@pytest.mark.parametrize("mode", ["selector", "flat"])
def test_gymnasium_and_sb3_checkers_pass(mode: str) -> None:
    env = PresetMatchEnv(_settings(action_mode=mode), renderer=FakeRenderer(), hearing=FakeHearing())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*render modes.*")  # no render modes: audio env
        gym_check_env(env)
    sb3_check_env(env)
    assert env.observation_space.shape == (env.engine.layout.size,)


def test_time_limit_wrapper_truncates_at_max_steps() -> None:
    env = make_env(_settings(max_steps=3, epsilon=1e-9), renderer=FakeRenderer(), hearing=FakeHearing())
    env.reset(seed=1)
    flags = [env.step(np.zeros(env.action_space.shape, np.float32))[2:4] for _ in range(3)]
    assert flags[:2] == [(False, False), (False, False)]
    assert flags[2] == (False, True)


def test_terminates_when_loss_under_epsilon() -> None:
    env = PresetMatchEnv(_settings(epsilon=1e-4), renderer=FakeRenderer(), hearing=FakeHearing())
    target = default_vector()  # the start patch itself: loss 0 after a zero action
    _obs, info = env.reset(seed=0, options={"target": target})
    assert info["loss"] < 1e-6
    _, _, terminated, truncated, info = env.step(np.zeros(env.action_space.shape, np.float32))
    assert terminated and not truncated and info["is_success"]


def test_reset_is_deterministic_for_a_seed_and_targets_differ_across_seeds() -> None:
    env = PresetMatchEnv(_settings(), renderer=FakeRenderer(), hearing=FakeHearing())
    a, _ = env.reset(seed=5)
    b, _ = env.reset(seed=5)
    c, _ = env.reset(seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_held_parameters_stay_at_the_target_and_start_is_neutral_on_the_stage() -> None:
    eng = _engine(n=3, stage=2)
    eng.reset_rows(np.arange(3))
    mask = active_mask(2).astype(bool)
    np.testing.assert_allclose(eng.x[:, ~mask], eng.target_x[:, ~mask])
    np.testing.assert_allclose(eng.x[:, mask], np.broadcast_to(default_vector()[mask], (3, mask.sum())))
    eng.step(np.ones((3, eng.codec.size), np.float32))
    np.testing.assert_allclose(eng.x[:, ~mask], eng.target_x[:, ~mask])


def test_warm_start_is_near_the_target() -> None:
    eng = _engine(n=16, stage=5, warm_start_prob=1.0, warm_start_noise=0.01)
    eng.reset_rows(np.arange(16))
    assert np.abs(eng.x - eng.target_x).max() < 0.06


def test_reward_formula() -> None:
    eng = _engine(n=2, beta=2.0, lambda_smooth=0.5, w_bound=0.0, w_silence=0.0, action_mode="flat")
    eng.reset_rows(np.arange(2))
    best_before = eng.best_loss.copy()
    action = np.zeros((2, N_PARAMS), np.float32)
    action[:, PARAM_INDEX["osc1_level"]] = 0.5  # delta = 0.05 on an active parameter
    result = eng.step(action)
    delta_sq = (0.5 * eng.settings.match.delta_max) ** 2
    expected = -result.loss + 2.0 * np.maximum(0.0, best_before - result.loss) - 0.5 * delta_sq
    np.testing.assert_allclose(result.reward, expected, rtol=1e-5, atol=1e-6)


def test_boundary_penalty_fires_when_pushing_past_one() -> None:
    eng = _engine(n=1, w_bound=1.0, beta=0.0, lambda_smooth=0.0, w_silence=0.0, action_mode="flat")
    target = default_vector()[None]
    eng.reset_rows(np.arange(1), target)
    eng.x[0, PARAM_INDEX["osc1_level"]] = 1.0
    action = np.zeros((1, N_PARAMS), np.float32)
    action[0, PARAM_INDEX["osc1_level"]] = 1.0
    result = eng.step(action)
    assert result.reward[0] == pytest.approx(-result.loss[0] - eng.settings.match.delta_max, abs=1e-5)


def test_selector_action_moves_only_the_chosen_module_within_delta_max() -> None:
    codec = ActionCodec("selector", delta_max=0.1)
    assert codec.size == N_SELECTOR + GROUP_WIDTH
    a = np.zeros((4, codec.size), np.float32)
    for g in range(4):
        a[g, g] = 1.0
    a[:, N_SELECTOR:] = 5.0  # out of the box: clamped
    deltas, selected = codec.decode(a)
    np.testing.assert_array_equal(selected, [0, 1, 2, 3])
    for g, group in enumerate(MODULE_GROUPS):
        moved = np.flatnonzero(deltas[g])
        np.testing.assert_array_equal(moved, sorted(group))
        np.testing.assert_allclose(deltas[g, moved], 0.1)


def test_flat_action_and_encode_roundtrip() -> None:
    codec = ActionCodec("flat", delta_max=0.05)
    want = np.random.default_rng(0).uniform(-0.05, 0.05, size=(5, N_PARAMS)).astype(np.float32)
    deltas, selected = codec.decode(codec.encode_deltas(want, np.ones(N_PARAMS, np.float32)))
    np.testing.assert_allclose(deltas, want, atol=1e-6)
    assert (selected == -1).all()
    sel = ActionCodec("selector", delta_max=0.05)
    only_filter = np.zeros((1, N_PARAMS), np.float32)
    only_filter[0, PARAM_INDEX["filter_cutoff"]] = -0.03
    deltas, selected = sel.decode(sel.encode_deltas(only_filter, np.ones(N_PARAMS, np.float32)))
    assert selected[0] == 1
    np.testing.assert_allclose(deltas, only_filter, atol=1e-6)


def test_bad_actions_are_rejected_with_a_clear_error() -> None:
    codec = ActionCodec("selector", delta_max=0.1)
    with pytest.raises(ValueError, match="shape"):
        codec.decode(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        codec.decode(np.full((1, codec.size), np.nan))
    with pytest.raises(ValueError, match="action_mode"):
        ActionCodec("bogus", 0.1)  # type: ignore[arg-type]


def test_discrete_parameters_are_snapped_in_the_render_but_accumulate_internally() -> None:
    eng = _engine(n=1, stage=4, action_mode="flat", delta_max=0.1)
    eng.reset_rows(np.arange(1))
    i = PARAM_INDEX["unison_voices"]  # 7 steps of 1/6: a 0.1 delta must not be lost to snapping
    action = np.zeros((1, N_PARAMS), np.float32)
    action[0, i] = 1.0
    eng.step(action)
    eng.step(action)
    assert eng.x[0, i] == pytest.approx(0.2)
    assert snap_vector(eng.x)[0, i] == pytest.approx(1 / 6)


def test_observation_layout_slices_hold_params_active_and_time() -> None:
    eng = _engine(n=2, stage=3)
    eng.reset_rows(np.arange(2))
    eng.step(np.zeros((2, eng.codec.size), np.float32))
    obs = eng.observe()
    sl = eng.layout.slices
    np.testing.assert_allclose(obs[:, sl["params"]], eng.x)
    np.testing.assert_allclose(obs[:, sl["active"]], np.broadcast_to(active_mask(3), (2, N_PARAMS)))
    np.testing.assert_allclose(obs[:, sl["time"]], 1 / eng.max_steps)
    assert obs.shape == (2, eng.layout.size) and np.isfinite(obs).all()
    assert eng.layout.describe()["size"] == eng.layout.size


def test_best_diff_observation_is_zero_at_reset() -> None:
    eng = _engine(n=2, observe_best_diff=True)
    eng.reset_rows(np.arange(2))
    obs = eng.observe()
    assert "best_diff" in eng.layout.slices
    np.testing.assert_allclose(obs[:, eng.layout.slices["best_diff"]], 0.0)


def test_start_vectors_match_stage_definition() -> None:
    target = np.full((1, N_PARAMS), 0.9, np.float32)
    start = start_vectors(target, 1)
    mask = active_mask(1).astype(bool)
    np.testing.assert_allclose(start[0, mask], default_vector()[mask])
    np.testing.assert_allclose(start[0, ~mask], 0.9)
