"""DQN over up/stay/down per parameter with a factored Q-function (one branch per parameter).

Input: an environment with a `MultiDiscrete([3] * P)` action space (the discrete action mode).
Output: `JointDiscreteWrapper` (what SB3's DQN sees: `Discrete(3**P)`, action index
`a = sum_i k_i 3**i`, `k_i` in {0: down, 1: stay, 2: up}) and `FactoredDQNPolicy`, whose Q-network
outputs 3 x P branch values and scores a joint action as the sum of its branches'.

The greedy joint action is then the per-parameter argmax, which is exactly the `updown` output
of `agents.policy.NumpyPolicy`: the exported actor is the branch network itself.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork


class JointDiscreteWrapper(gym.ActionWrapper):
    """`MultiDiscrete([3]*P)` -> `Discrete(3**P)` (base-3 digits, parameter 0 least significant)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.action_space
        if not isinstance(space, gym.spaces.MultiDiscrete) or not np.all(space.nvec == 3):
            raise ValueError(f"JointDiscreteWrapper needs MultiDiscrete([3]*P), got {space}")
        self.n_params = int(space.nvec.size)
        self.action_space = gym.spaces.Discrete(3**self.n_params)
        self._powers = 3 ** np.arange(self.n_params)

    def action(self, action: Any) -> np.ndarray:
        return (int(action) // self._powers) % 3

    def reverse_action(self, action: Any) -> int:
        return int(np.sum(np.asarray(action, dtype=np.int64) * self._powers))


class FactoredQNetwork(QNetwork):
    """Q(s, a) = sum_i branch_i(s)[k_i(a)]; `q_net` outputs the 3 x P branch values."""

    def __init__(self, observation_space: gym.spaces.Space, action_space: gym.spaces.Discrete, **kwargs: Any) -> None:
        n_params = int(round(np.log(action_space.n) / np.log(3)))
        if 3**n_params != action_space.n:
            raise ValueError(f"FactoredQNetwork needs Discrete(3**P), got Discrete({action_space.n})")
        branch_space = gym.spaces.Discrete(3 * n_params)
        super().__init__(observation_space, branch_space, **kwargs)
        self.action_space = action_space
        self.n_params = n_params
        digits = (np.arange(action_space.n)[:, None] // 3 ** np.arange(n_params)[None, :]) % 3  # [A, P]
        flat = digits + 3 * np.arange(n_params)[None, :]
        self.register_buffer("joint_index", torch.as_tensor(flat, dtype=torch.long), persistent=False)
        self.register_buffer("powers", torch.as_tensor(3 ** np.arange(n_params), dtype=torch.long), persistent=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        branches = self.q_net(self.extract_features(obs, self.features_extractor))  # [B, 3P]
        return branches[:, self.joint_index].sum(dim=-1)  # [B, 3**P]

    def _predict(self, observation: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        branches = self.q_net(self.extract_features(observation, self.features_extractor))
        digits = branches.view(-1, self.n_params, 3).argmax(dim=-1)  # [B, P]
        return (digits * self.powers).sum(dim=-1)


class FactoredDQNPolicy(DQNPolicy):
    """SB3 DQN policy whose Q-networks are `FactoredQNetwork`s."""

    def make_q_net(self) -> QNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return FactoredQNetwork(**net_args).to(self.device)
