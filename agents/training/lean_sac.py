"""SAC with SB3's losses and update order, in fewer small tensor operations (the CPU is the budget).

Input: everything `stable_baselines3.SAC` takes (it is a subclass: same hyper-parameters, same
checkpoint format, `SAC.load` files load into it and back).
Output: the same learning algorithm. On CPU, with the listening agent's small MLPs, a SAC step
is mostly Python and per-op overhead, not arithmetic, so `train()` and the rollout's action
sampling are rewritten here without SB3's per-step detours:
- the squashed Gaussian's sample and log-probability computed directly (the same draws from
  torch's generator as `torch.distributions.Normal.rsample`, the same formula, no distribution
  objects and no argument validation);
- no training-mode flips (`set_training_mode` walks every module twice per step) when the policy
  has no module whose behaviour depends on the mode (dropout, batch norm);
- the critic frozen while the actor's loss is back-propagated (SB3 computes the critic's weight
  gradients there and discards them at the next `zero_grad`);
- the target networks' Polyak update as one `torch._foreach_lerp_` over cached parameter lists;
- the losses logged once per `train()` call instead of one `.item()` per loss per step.
Anything the fast path does not cover (gSDE, batch-norm statistics, dict observations, an
`ent_coef` that is neither learnt nor a constant) falls back to SB3's own code. A test checks
one update against SB3's `SAC.train` from the same state and seed (`tests/agents/test_lean_sac.py`);
`benchmarks/sac_update.py` measures the speed-up.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.sac.policies import CnnPolicy, MlpPolicy, MultiInputPolicy
from torch import nn

_LOG_SQRT_2PI = math.log(math.sqrt(2.0 * math.pi))
_SQUASH_EPS = 1e-6  # SB3's SquashedDiagGaussianDistribution epsilon
_MODE_DEPENDENT = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._NormBase)


def squashed_sample(mean: torch.Tensor, log_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """tanh(mean + std * eps) and its log-probability [B, 1], as SB3's squashed diagonal Gaussian."""
    eps = torch.empty_like(mean).normal_()  # Normal.rsample's draw: same generator calls
    gaussian = mean + eps * log_std.exp()
    action = torch.tanh(gaussian)
    # log N(gaussian; mean, std) = -eps^2 / 2 - log std - log sqrt(2 pi); minus the tanh Jacobian
    log_prob = (-0.5 * eps.square() - log_std - _LOG_SQRT_2PI).sum(dim=1, keepdim=True)
    log_prob = log_prob - torch.log(1.0 - action.square() + _SQUASH_EPS).sum(dim=1, keepdim=True)
    return action, log_prob


class LeanMlpPolicy(MlpPolicy):
    """SB3's SAC MLP policy whose `set_training_mode` does nothing when the mode is already set.

    SB3 sets the mode before every rollout step and every `train()` call, walking all modules each
    time; the lean algorithm no longer flips it per step, so the walk is needed only on a change.
    """

    def set_training_mode(self, mode: bool) -> None:
        if mode != self.training:
            super().set_training_mode(mode)


class LeanSAC(SAC):
    """`stable_baselines3.SAC` with a faster `train()` and rollout action sampling (see module doc)."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": LeanMlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }

    def _lean_parts(self) -> tuple | None:
        """Cached (critic params, target params, mode_matters), or None when the fast path does not apply."""
        if getattr(self, "_lean_cache", None) is not None:
            return self._lean_cache
        flat_box = isinstance(self.observation_space, spaces.Box) and len(self.observation_space.shape) == 1
        if self.use_sde or len(self.batch_norm_stats) > 0 or not flat_box:
            return None
        if self.ent_coef_optimizer is None and not hasattr(self, "ent_coef_tensor"):
            return None
        mode_matters = any(isinstance(m, _MODE_DEPENDENT) for m in self.policy.modules())
        params, targets = list(self.critic.parameters()), list(self.critic_target.parameters())
        if len(params) != len(targets):
            return None
        self._lean_cache = (params, targets, mode_matters)
        return self._lean_cache

    def _create_aliases(self) -> None:  # called by `_setup_model`: the networks were (re)built
        super()._create_aliases()
        self._lean_cache: tuple | None = None

    def set_parameters(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().set_parameters(*args, **kwargs)
        self._lean_cache = None

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        parts = self._lean_parts()
        if parts is None:
            super().train(gradient_steps, batch_size)
            return
        critic_params, target_params, mode_matters = parts
        if mode_matters:
            self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)
        ent_coef_losses: list[torch.Tensor] = []
        ent_coefs: list[torch.Tensor] = []
        actor_losses: list[torch.Tensor] = []
        critic_losses: list[torch.Tensor] = []
        for gradient_step in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = data.discounts if data.discounts is not None else self.gamma
            actions_pi, log_prob = squashed_sample(*self._dist_params(data.observations))
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                ent_coef = torch.exp(self.log_ent_coef.detach())
                ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
                ent_coef_losses.append(ent_coef_loss.detach())
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()
            else:
                ent_coef = self.ent_coef_tensor
            ent_coefs.append(ent_coef.detach())

            with torch.no_grad():
                next_actions, next_log_prob = squashed_sample(*self._dist_params(data.next_observations))
                next_q = torch.cat(self.critic_target(data.next_observations, next_actions), dim=1)
                next_q = next_q.min(dim=1, keepdim=True).values - ent_coef * next_log_prob
                target_q = data.rewards + (1 - data.dones) * discounts * next_q

            current_q = self.critic(data.observations, data.actions)
            critic_loss = 0.5 * sum(F.mse_loss(q, target_q) for q in current_q)
            critic_losses.append(critic_loss.detach())  # type: ignore[union-attr]
            self.critic.optimizer.zero_grad()
            critic_loss.backward()  # type: ignore[union-attr]
            self.critic.optimizer.step()

            for p in critic_params:  # the actor's loss needs d/d(action) only, not the critic's weights
                p.requires_grad_(False)
            try:
                q_pi = torch.cat(self.critic(data.observations, actions_pi), dim=1)
                actor_loss = (ent_coef * log_prob - q_pi.min(dim=1, keepdim=True).values).mean()
                self.actor.optimizer.zero_grad()
                actor_loss.backward()
            finally:
                for p in critic_params:
                    p.requires_grad_(True)
            self.actor.optimizer.step()
            actor_losses.append(actor_loss.detach())

            if gradient_step % self.target_update_interval == 0:
                with torch.no_grad():
                    torch._foreach_lerp_(target_params, critic_params, self.tau)

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", _mean(ent_coefs))
        self.logger.record("train/actor_loss", _mean(actor_losses))
        self.logger.record("train/critic_loss", _mean(critic_losses))
        if ent_coef_losses:
            self.logger.record("train/ent_coef_loss", _mean(ent_coef_losses))

    def _dist_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std, _ = self.actor.get_action_dist_params(obs)
        return mean, log_std

    def _sample_action(
        self, learning_starts: int, action_noise: object | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        parts = self._lean_parts()
        warming_up = self.num_timesteps < learning_starts
        if parts is None or warming_up or not isinstance(self.action_space, spaces.Box):
            return super()._sample_action(learning_starts, action_noise, n_envs)  # type: ignore[arg-type]
        if parts[2]:
            self.policy.set_training_mode(False)
        obs = np.asarray(self._last_obs, dtype=np.float32).reshape((-1, *self.observation_space.shape))
        with torch.no_grad():
            obs_t = torch.as_tensor(obs, device=self.device)
            scaled, _ = squashed_sample(*self._dist_params(obs_t))
        scaled_action = scaled.cpu().numpy()
        if action_noise is not None:
            scaled_action = np.clip(scaled_action + action_noise(), -1, 1)  # type: ignore[operator]
        return self.policy.unscale_action(scaled_action), scaled_action


def _mean(values: list[torch.Tensor]) -> float:
    return float(torch.stack(values).mean()) if values else float("nan")
