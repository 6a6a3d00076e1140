"""Behaviour-cloning warm start from CMA-ES trajectories.

Input: settings, a renderer / hearing, a number of training targets and a CMA-ES render budget.
Output: demonstrations (observations `[M, D]`, expert actions `[M, A]`): CMA-ES solves each target
(`agents.baselines.cmaes`), then the environment is replayed from the start patch with the expert
moving toward CMA-ES's solution at most delta_max per parameter and step (encoded in the action
mode's Box form); and `behaviour_clone`, which fits an SB3 actor's deterministic action to them
(mean squared error, Adam) before reinforcement learning starts.
"""

from __future__ import annotations

import numpy as np
import torch
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm

from agents.baselines.cmaes import cmaes
from agents.baselines.common import MatchProblem
from agents.match.curriculum import TargetSampler, factory_vectors
from agents.match.engine import MatchEngine
from agents.match.probe import Hearing, Renderer
from settings.loader import Settings, with_overrides

BC_SEED_OFFSET = 50_000  # BC targets come from the training stream of another seed


def cmaes_demonstrations(
    settings: Settings, renderer: Renderer, hearing: Hearing, n_episodes: int, budget: int, stage: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """(observations, expert actions, median CMA-ES loss) from `n_episodes` solved targets."""
    ms = settings.match
    if n_episodes <= 0 or budget <= 0:
        raise ValueError(f"behaviour cloning needs episodes and budget > 0, got {n_episodes}, {budget}")
    targets = TargetSampler(ms.seed + BC_SEED_OFFSET, factory_vectors(), ms.factory_prob).sample(n_episodes)
    solved = cmaes(MatchProblem(targets, stage, renderer, hearing, ms.epsilon), budget, seed=ms.seed)
    settings = with_overrides(settings, {"match.stage": stage, "match.warm_start_prob": 0.0})
    engine = MatchEngine(n_episodes, settings, renderer=renderer, hearing=hearing)
    engine.reset_rows(np.arange(n_episodes), targets)
    observations, actions = [], []
    for _ in range(ms.max_steps):
        obs = engine.observe()
        wanted = np.clip(solved.best_x - engine.x, -ms.delta_max, ms.delta_max)
        action = engine.codec.encode_deltas(wanted, engine.active)
        observations.append(obs)
        actions.append(action)
        engine.step(action)
    return np.concatenate(observations), np.concatenate(actions), float(np.median(solved.best_loss))


def _deterministic_action(model: BaseAlgorithm, obs: torch.Tensor) -> torch.Tensor:
    if isinstance(model, (SAC, TD3)):
        return model.actor(obs, deterministic=True) if isinstance(model, SAC) else model.actor(obs)
    if isinstance(model, PPO):
        return model.policy.get_distribution(obs).distribution.mean.clamp(-1.0, 1.0)
    raise ValueError(f"behaviour cloning supports SAC, TD3 and PPO, not {type(model).__name__}")


def behaviour_clone(
    model: BaseAlgorithm, observations: np.ndarray, actions: np.ndarray, epochs: int, seed: int = 0
) -> float:
    """Fit the actor to the demonstrations; returns the final mean squared error."""
    actor = model.actor if isinstance(model, (SAC, TD3)) else model.policy
    params = [p for p in actor.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=1e-3)
    obs_t = torch.as_tensor(observations, dtype=torch.float32, device=model.device)
    act_t = torch.as_tensor(actions, dtype=torch.float32, device=model.device)
    gen = torch.Generator().manual_seed(seed)
    batch = 256
    mse = float("nan")
    for _ in range(max(1, epochs)):
        order = torch.randperm(len(obs_t), generator=gen)
        losses = []
        for lo in range(0, len(order), batch):
            idx = order[lo : lo + batch]
            pred = _deterministic_action(model, obs_t[idx])
            loss = torch.nn.functional.mse_loss(pred, act_t[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        mse = float(np.mean(losses))
    if isinstance(model, TD3):
        model.actor_target.load_state_dict(model.actor.state_dict())
    return mse
