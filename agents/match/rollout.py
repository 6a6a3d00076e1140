"""Run a policy on a fixed set of target presets, batched, and collect per-episode results.

Input: a policy (observations `[B, D]` -> actions `[B, A]`), targets `[P, 24]`, a stage, a step
budget, and the renderer / hearing. Output: `RolloutResult` with, per target, the final loss (the
loss when the episode terminated, else after the last step), success (loss < epsilon), steps to
epsilon (-1: never), the best loss seen, and the parameter trajectory of the first few episodes.
Used by the evaluation CLI (trained models) and by training (periodic evaluation, curriculum).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from agents.match.engine import MatchEngine
from agents.match.probe import Hearing, Renderer
from settings.loader import Settings, with_overrides

Policy = Callable[[np.ndarray], np.ndarray]
BATCH_ROWS = 64


@dataclass
class RolloutResult:
    final_loss: np.ndarray  # [P]
    best_loss: np.ndarray  # [P]
    steps_to_eps: np.ndarray  # [P] int, -1 when never reached
    final_x: np.ndarray  # [P, 24] the agent's vector at the end (terminated: at termination)
    trajectories: list[np.ndarray] = field(default_factory=list)  # [steps + 1, 24] for the first few

    @property
    def success(self) -> np.ndarray:
        return self.steps_to_eps >= 0


def rollout(
    policy: Policy,
    targets_0to1: np.ndarray,
    settings: Settings,
    stage: int,
    budget: int,
    *,
    renderer: Renderer | None = None,
    hearing: Hearing | None = None,
    keep_trajectories: int = 3,
    progress: bool = False,
) -> RolloutResult:
    if budget <= 0:
        raise ValueError(f"the step budget must be > 0, got {budget}")
    settings = with_overrides(settings, {"match.stage": stage, "match.warm_start_prob": 0.0})
    n_targets = len(targets_0to1)
    final_loss = np.zeros(n_targets, np.float32)
    best_loss = np.zeros(n_targets, np.float32)
    steps = np.full(n_targets, -1, np.int64)
    final_x = np.zeros((n_targets, targets_0to1.shape[1]), np.float32)
    trajectories: list[np.ndarray] = []
    engine: MatchEngine | None = None
    bar = tqdm(total=n_targets * budget, unit="step", desc="rollout", disable=not progress)
    for lo in range(0, n_targets, BATCH_ROWS):
        chunk = targets_0to1[lo : lo + BATCH_ROWS]
        if engine is None or engine.n != len(chunk):
            engine = MatchEngine(len(chunk), settings, renderer=renderer, hearing=hearing, time_limit=None)
        rows = np.arange(len(chunk))
        engine.reset_rows(rows, chunk)
        done = np.zeros(len(chunk), bool)
        loss = engine.loss.copy()
        x = engine.x.copy()
        keep = max(0, min(keep_trajectories - lo, len(chunk)))
        traj = [engine.x[:keep].copy()]
        obs = engine.observe()
        for t in range(budget):
            result = engine.step(np.asarray(policy(obs), dtype=np.float32))
            obs = result.obs
            live = ~done
            loss[live] = result.loss[live]
            x[live] = engine.x[live]
            hit = live & result.terminated
            steps[lo + np.flatnonzero(hit)] = t + 1
            done |= hit
            traj.append(np.where(done[:keep, None], traj[-1], engine.x[:keep]))
            bar.update(len(chunk))
            if done.all():
                break
        final_loss[lo : lo + len(chunk)] = loss
        best_loss[lo : lo + len(chunk)] = engine.best_loss
        final_x[lo : lo + len(chunk)] = x
        stacked = np.stack(traj)  # [steps + 1, keep, 24]
        trajectories.extend(stacked[:, i] for i in range(keep))
    bar.close()
    return RolloutResult(final_loss, best_loss, steps, final_x, trajectories)


def batch_policy(act_one: Callable[[np.ndarray], np.ndarray]) -> Policy:
    """A one-observation policy (e.g. `agents.policy.NumpyPolicy.act`) as a batch policy."""

    def act(obs: np.ndarray) -> np.ndarray:
        return np.stack([np.array(act_one(o), dtype=np.float32) for o in obs])

    return act
