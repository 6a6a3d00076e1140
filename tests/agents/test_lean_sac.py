"""LeanSAC (agents.training.lean_sac) learns exactly what SB3's SAC learns, from the same state and seed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure

from agents.training.lean_sac import LeanSAC, squashed_sample

OBS, ACT = 6, 3


class QuadraticEnv(gym.Env):
    """Random observations; the reward prefers actions near a fixed point: something to learn."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-2.0, 2.0, (OBS,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACT,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self._obs(), float(-np.sum(np.square(action - 0.3))), False, False, {}

    def _obs(self) -> np.ndarray:
        return self.np_random.uniform(-1, 1, OBS).astype(np.float32)


def _pair(**kwargs: Any) -> tuple[SAC, LeanSAC]:
    """An SB3 SAC with a filled replay buffer and a LeanSAC in exactly the same state."""
    opts = dict(learning_starts=10_000, batch_size=16, seed=3, policy_kwargs={"net_arch": [32, 32]}) | kwargs
    ref = SAC("MlpPolicy", QuadraticEnv(), **opts)
    ref.learn(64)  # warm-up only: random actions fill the buffer, no update yet
    lean = LeanSAC("MlpPolicy", QuadraticEnv(), **opts)
    lean.policy.load_state_dict(ref.policy.state_dict())
    if ref.log_ent_coef is not None:
        with torch.no_grad():
            lean.log_ent_coef.copy_(ref.log_ent_coef)
    lean.replay_buffer = copy.deepcopy(ref.replay_buffer)
    for model in (ref, lean):
        model.set_logger(configure(None, [""]))
    return ref, lean


def _assert_same_policy(ref: SAC, lean: LeanSAC, atol: float) -> None:
    ref_state, lean_state = ref.policy.state_dict(), lean.policy.state_dict()
    assert ref_state.keys() == lean_state.keys()
    for key in ref_state:
        torch.testing.assert_close(lean_state[key], ref_state[key], atol=atol, rtol=0, msg=key)


@pytest.mark.parametrize("ent_coef", ["auto", 0.05])
def test_train_matches_sb3_update_for_update(ent_coef: str | float) -> None:
    ref, lean = _pair(ent_coef=ent_coef, tau=0.3)  # a large tau: the target update shows in 5 steps
    for model in (ref, lean):  # same replay indices (numpy) and the same Gaussian draws (torch)
        np.random.seed(11)
        torch.manual_seed(11)
        model.train(gradient_steps=5, batch_size=16)
    before = SAC("MlpPolicy", QuadraticEnv(), seed=3, policy_kwargs={"net_arch": [32, 32]}).policy.state_dict()
    moved = max(float((ref.policy.state_dict()[k] - before[k]).abs().max()) for k in before)
    assert moved > 1e-3  # the updates did something worth comparing
    _assert_same_policy(ref, lean, atol=2e-5)
    if ent_coef == "auto":
        torch.testing.assert_close(lean.log_ent_coef, ref.log_ent_coef, atol=1e-6, rtol=0)
    assert lean._n_updates == ref._n_updates == 5
    assert all(p.requires_grad for p in lean.critic.parameters())  # unfrozen after the actor's step
    for key in ("train/actor_loss", "train/critic_loss", "train/ent_coef"):
        assert np.isfinite(lean.logger.name_to_value[key])
        assert lean.logger.name_to_value[key] == pytest.approx(ref.logger.name_to_value[key], rel=1e-4, abs=1e-6)


def test_rollout_actions_match_sb3() -> None:
    ref, lean = _pair(learning_starts=0)
    for model in (ref, lean):
        model.num_timesteps = 100
        model._last_obs = np.random.default_rng(0).uniform(-1, 1, (1, OBS)).astype(np.float32)
    torch.manual_seed(5)
    ref_action, ref_buffer = ref._sample_action(learning_starts=0, n_envs=1)
    torch.manual_seed(5)
    action, buffer = lean._sample_action(learning_starts=0, n_envs=1)
    assert action.shape == ref_action.shape == (1, ACT)
    np.testing.assert_allclose(action, ref_action, atol=1e-6)
    np.testing.assert_allclose(buffer, ref_buffer, atol=1e-6)


def test_squashed_sample_is_sb3s_log_probability() -> None:
    from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution

    mean = torch.randn(64, ACT, requires_grad=True)
    log_std = torch.randn(64, ACT).clamp(-2, 1).requires_grad_(True)
    torch.manual_seed(1)
    action, log_prob = squashed_sample(mean, log_std)
    torch.manual_seed(1)
    ref_action, ref_log_prob = SquashedDiagGaussianDistribution(ACT).log_prob_from_params(mean, log_std)
    torch.testing.assert_close(action, ref_action, atol=1e-6, rtol=0)
    torch.testing.assert_close(log_prob, ref_log_prob.reshape(-1, 1), atol=1e-4, rtol=1e-5)
    grads = torch.autograd.grad(log_prob.sum(), (mean, log_std))
    ref_grads = torch.autograd.grad(ref_log_prob.sum(), (mean, log_std))
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-4)


def test_falls_back_to_sb3_where_the_fast_path_does_not_apply() -> None:
    model = LeanSAC("MlpPolicy", QuadraticEnv(), use_sde=True, learning_starts=20, batch_size=8, seed=0,
                    policy_kwargs={"net_arch": [16]})  # fmt: skip
    assert model._lean_parts() is None
    model.learn(40)  # gSDE: SB3's own train() and action sampling
    assert model._n_updates > 0


def test_checkpoints_load_both_ways(tmp_path: Path) -> None:
    lean = LeanSAC("MlpPolicy", QuadraticEnv(), learning_starts=20, batch_size=8, seed=0,
                   policy_kwargs={"net_arch": [16]})  # fmt: skip
    lean.learn(60)
    lean.save(tmp_path / "lean.zip")
    plain = SAC.load(tmp_path / "lean.zip", env=QuadraticEnv())
    _assert_same_policy(plain, lean, atol=0.0)  # type: ignore[arg-type]
    plain.save(tmp_path / "plain.zip")
    again = LeanSAC.load(tmp_path / "plain.zip", env=QuadraticEnv())
    assert again._lean_parts() is not None
    again.learn(30, reset_num_timesteps=False)  # a plain SB3 checkpoint resumes on the fast path
    assert again._n_updates > lean._n_updates
