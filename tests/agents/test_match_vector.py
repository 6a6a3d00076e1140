"""The vectorized faces: one batched render per step, SAME_STEP autoreset, SB3 training on it."""

from __future__ import annotations

import numpy as np
from stable_baselines3 import SAC
from stable_baselines3.common.vec_env import VecMonitor

from agents.match.vector import PresetMatchVecEnv, PresetMatchVectorEnv
from settings.loader import Settings, with_overrides
from tests.agents.test_match_doubles import FakeHearing, FakeRenderer


def _settings(**match: object) -> Settings:
    return with_overrides(Settings(), {f"match.{k}": v for k, v in match.items()})


def test_one_render_call_per_step_for_all_envs() -> None:
    renderer = FakeRenderer()
    env = PresetMatchVectorEnv(8, _settings(max_steps=50, epsilon=1e-9), renderer=renderer, hearing=FakeHearing())
    obs, infos = env.reset(seed=0)
    assert obs.shape == (8, env.single_observation_space.shape[0])
    calls, rows = renderer.calls, renderer.rows
    for _ in range(5):
        obs, reward, term, trunc, infos = env.step(env.action_space.sample())
    assert renderer.calls - calls == 5
    assert renderer.rows - rows == 40
    assert reward.shape == term.shape == trunc.shape == (8,)
    assert env.observation_space.contains(obs)
    np.testing.assert_array_equal(infos["stage"], 1)
    np.testing.assert_array_equal(infos["step"], 5)


def test_same_step_autoreset_and_final_observation() -> None:
    env = PresetMatchVectorEnv(4, _settings(max_steps=2, epsilon=1e-9), renderer=FakeRenderer(), hearing=FakeHearing())
    env.reset(seed=1)
    env.step(np.zeros((4, env.single_action_space.shape[0]), np.float32))
    obs, _, term, trunc, infos = env.step(np.zeros((4, env.single_action_space.shape[0]), np.float32))
    assert trunc.all() and not term.any()
    assert infos["_final_obs"].all()
    assert infos["final_obs"][0].shape == obs[0].shape
    np.testing.assert_array_equal(infos["step"], 0)  # already reset
    np.testing.assert_array_equal(infos["final_info"]["step"], 2)
    assert not np.array_equal(infos["final_obs"][0], obs[0])


def test_targets_are_cached_once_per_episode() -> None:
    renderer = FakeRenderer()
    env = PresetMatchVectorEnv(4, _settings(max_steps=50), renderer=renderer, hearing=FakeHearing())
    env.reset(seed=2)
    rows_after_reset = renderer.rows
    assert rows_after_reset == 1 + 4 * 2  # a probe at construction, then targets + starts
    env.step(np.zeros((4, env.single_action_space.shape[0]), np.float32))
    assert renderer.rows - rows_after_reset == 4  # only the current patches


def test_stage_option_and_set_stage_reach_new_episodes() -> None:
    env = PresetMatchVectorEnv(2, _settings(), renderer=FakeRenderer(), hearing=FakeHearing())
    _, infos = env.reset(seed=0, options={"stage": 3})
    np.testing.assert_array_equal(infos["stage"], 3)
    env.set_stage(4)
    _, infos = env.reset()
    np.testing.assert_array_equal(infos["stage"], 4)


def test_sb3_vecenv_adapter_trains_sac() -> None:
    venv = PresetMatchVecEnv(4, _settings(max_steps=5), renderer=FakeRenderer(), hearing=FakeHearing())
    model = SAC(
        "MlpPolicy",
        VecMonitor(venv),
        learning_starts=8,
        buffer_size=500,
        batch_size=8,
        policy_kwargs={"net_arch": [16]},
        seed=0,
    )
    model.learn(40)
    assert model.num_timesteps == 40
    assert model.replay_buffer is not None and model.replay_buffer.size() == 10  # 40 steps / 4 envs
    obs = venv.reset()
    obs2, rewards, _dones, infos = venv.step(np.zeros((4, venv.action_space.shape[0]), np.float32))
    assert obs2.shape == obs.shape and rewards.shape == (4,) and len(infos) == 4
    assert venv.get_attr("render_mode") == [None] * 4
    assert venv.env_method("set_stage", 2) == [None] * 4 and venv.engine.stage == 2


def test_sb3_adapter_reports_terminal_observation() -> None:
    venv = PresetMatchVecEnv(3, _settings(max_steps=1, epsilon=1e-9), renderer=FakeRenderer(), hearing=FakeHearing())
    venv.seed(3)
    venv.reset()
    _, _, dones, infos = venv.step(np.zeros((3, venv.action_space.shape[0]), np.float32))
    assert dones.all()
    assert all("terminal_observation" in i and i["TimeLimit.truncated"] for i in infos)


def test_every_row_hears_its_targets_noise() -> None:
    settings = _settings(epsilon=1e-6, warm_start_prob=1.0, warm_start_noise=0.0)  # start == target
    env = PresetMatchVectorEnv(5, settings, renderer=FakeRenderer(), hearing=FakeHearing())
    targets = np.full((5, 24), 0.5, np.float32)  # noise level 0.5: position-dependent noise
    env.reset(seed=0, options={"targets": targets})
    assert env.engine.loss.max() < 1e-6
    _, _, terminated, _, _ = env.step(np.zeros((5, env.single_action_space.shape[0]), np.float32))
    assert terminated.all()
    env.engine.reset_rows(np.array([3]), targets[:1])  # a single row, reset at its own position
    assert env.engine.loss[3] < 1e-6
