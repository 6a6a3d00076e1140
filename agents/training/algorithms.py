"""Stable-Baselines3 algorithm factory shared by both tasks.

Input: an algorithm name (sac, ppo, td3, a2c, dqn), a (vectorized) environment, the `training:`
settings, a TensorBoard folder and a seed.
Output: a configured SB3 model whose actor is a plain ReLU MLP (`net_arch`), so that
`agents.training.export` can turn it into the pickle-free numpy policy of the model directory.

SAC and TD3 need a continuous (Box) action space, DQN the discrete up/stay/down one (the env is
wrapped by `wrap_for_algorithm` into `Discrete(3**P)` and learnt with a factored Q-network, see
`agents.training.factored_dqn`); PPO and A2C take both. A mismatch raises ValueError naming the
algorithm and the action mode to use instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import A2C, DQN, PPO, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import VecEnv

from agents.config import TrainingSettings
from agents.training.factored_dqn import FactoredDQNPolicy, JointDiscreteWrapper
from agents.training.lean_sac import LeanSAC

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"sac": LeanSAC, "ppo": PPO, "td3": TD3, "a2c": A2C, "dqn": DQN}
CONTINUOUS_ONLY = ("sac", "td3")
DISCRETE_ONLY = ("dqn",)
FUSED_ADAM = ("sac", "td3", "ppo", "dqn")  # SB3's default optimizer for these is Adam


def algorithm_class(name: str) -> type[BaseAlgorithm]:
    try:
        return ALGORITHMS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown algorithm '{name}' (known: {', '.join(ALGORITHMS)})") from None


def check_action_space(name: str, action_space: gym.Space) -> None:
    """Raise ValueError when `name` cannot act in `action_space` (the env's own, before wrapping)."""
    name = name.lower()
    algorithm_class(name)
    if name in CONTINUOUS_ONLY and not isinstance(action_space, gym.spaces.Box):
        raise ValueError(f"algorithm '{name}' needs continuous actions: use the continuous action mode")
    if name in DISCRETE_ONLY and not isinstance(action_space, (gym.spaces.MultiDiscrete, gym.spaces.Discrete)):
        raise ValueError(f"algorithm '{name}' needs discrete actions: use the discrete action mode (--action discrete)")


def wrap_for_algorithm(name: str, env: gym.Env) -> gym.Env:
    """Check the action space and adapt the env: DQN sees `Discrete(3**P)` instead of `MultiDiscrete`."""
    check_action_space(name, env.action_space)
    if name.lower() == "dqn" and isinstance(env.action_space, gym.spaces.MultiDiscrete):
        return JointDiscreteWrapper(env)
    return env


def make_algorithm(
    name: str,
    env: VecEnv | gym.Env,
    training: TrainingSettings,
    *,
    tensorboard_log: Path | None,
    seed: int,
    verbose: int = 0,
    policy_kwargs: dict[str, Any] | None = None,
) -> BaseAlgorithm:
    """A fresh SB3 model for `env` with the hyper-parameters of `training`.

    `policy_kwargs` replaces the default MLP (`training.net_arch`, ReLU), e.g. for another observer.
    Adam-based algorithms (all but A2C, whose RMSprop has no fused kernel) get torch's fused Adam
    unless `policy_kwargs` names an `optimizer_kwargs`: one kernel per parameter group instead of a
    dozen small ops per tensor. SAC is `agents.training.lean_sac.LeanSAC` (SB3's SAC, same updates,
    less per-step overhead); together ~1.4x SB3's default SAC steps/s on CPU (docs/benchmarks.md).
    """
    name = name.lower()
    cls = algorithm_class(name)
    if name in CONTINUOUS_ONLY:
        check_action_space(name, env.action_space)
    if policy_kwargs is None:
        policy_kwargs = {"net_arch": list(training.net_arch), "activation_fn": torch.nn.ReLU}
    if name in FUSED_ADAM and "optimizer_kwargs" not in policy_kwargs:
        policy_kwargs = policy_kwargs | {"optimizer_kwargs": {"fused": True}}
    kwargs: dict[str, Any] = {
        "learning_rate": training.learning_rate,
        "gamma": training.gamma,
        "seed": seed,
        "device": training.device,
        "verbose": verbose,
        "tensorboard_log": str(tensorboard_log) if tensorboard_log is not None else None,
    }
    if name in ("sac", "td3", "dqn"):
        kwargs |= {
            "batch_size": training.batch_size,
            "buffer_size": training.buffer_size,
            "learning_starts": training.learning_starts,
            "train_freq": training.train_freq,
            "gradient_steps": training.gradient_steps,
        }
    if name == "td3":
        n_act = int(env.action_space.shape[0])  # type: ignore[index]
        kwargs["action_noise"] = NormalActionNoise(mean=np.zeros(n_act), sigma=np.full(n_act, 0.2))
    if name == "dqn":
        kwargs |= {"exploration_fraction": 0.3, "target_update_interval": 500}
    if name == "ppo":
        rollout = training.n_steps * int(getattr(env, "num_envs", 1))
        kwargs |= {"n_steps": training.n_steps, "batch_size": min(training.batch_size, rollout)}
    if name == "a2c":
        kwargs["n_steps"] = max(1, min(training.n_steps, 32))
    policy: str | type = FactoredDQNPolicy if name == "dqn" else "MlpPolicy"
    return cls(policy, env, policy_kwargs=policy_kwargs, **kwargs)


def load_algorithm(name: str, path: Path, env: VecEnv | gym.Env, training: TrainingSettings) -> BaseAlgorithm:
    """Load an SB3 checkpoint zip (the only place checkpoints are unpickled; never on stage)."""
    cls = algorithm_class(name)
    try:
        return cls.load(str(path), env=env, device=training.device)
    except Exception as exc:  # SB3 raises many kinds (zip, pickle, shape mismatch)
        raise ValueError(f"{path}: cannot load checkpoint ({type(exc).__name__}: {exc})") from exc
