"""`python benchmarks/sac_update.py --json`: SAC training steps/s as the project trains (LeanSAC, fused
Adam) against SB3's own SAC with its default Adam, same run.

Input: the listening agent's training shape (observation 64, action 8, `--net-arch`, `--batch-size`;
defaults those of `models/default`), one torch thread, a trivial environment (random observations),
so that the time is SAC's: one gradient step per environment step, as `train.py` trains.
Output: one JSON object: `project_steps_per_s` (`agents.training.algorithms.make_algorithm`:
`agents.training.lean_sac.LeanSAC` with torch's fused Adam), `sb3_default_steps_per_s`
(`stable_baselines3.SAC` with its default, per-tensor Adam), their `ratio`, `sb3_fused_steps_per_s`
(SB3's SAC with fused Adam: the optimizer's share of the ratio) and the settings. The sides alternate
`--rounds` times; medians.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import SAC

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.config import TrainingSettings
from agents.training import algorithms
from agents.training.algorithms import make_algorithm


class NoiseEnv(gym.Env):
    """Random observations, a quadratic reward: nothing to compute but SAC itself."""

    def __init__(self, obs_size: int, action_size: int) -> None:
        self.observation_space = gym.spaces.Box(-3.0, 3.0, (obs_size,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (action_size,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, self.observation_space.shape).astype(np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs = self.np_random.uniform(-1, 1, self.observation_space.shape).astype(np.float32)
        return obs, float(-np.sum(np.square(action))), False, False, {}


def steps_per_s(training: TrainingSettings, side: str, steps: int) -> float:
    """`side`: project (as train.py builds it), sb3_default or sb3_fused (SB3's SAC class)."""
    policy_kwargs: dict[str, Any] = {"net_arch": list(training.net_arch), "activation_fn": torch.nn.ReLU}
    if side == "sb3_default":
        policy_kwargs["optimizer_kwargs"] = {}
    project_class = algorithms.ALGORITHMS["sac"]
    algorithms.ALGORITHMS["sac"] = project_class if side == "project" else SAC
    try:
        model = make_algorithm("sac", NoiseEnv(64, 8), training, tensorboard_log=None, seed=0,
                               policy_kwargs=policy_kwargs)  # fmt: skip
    finally:
        algorithms.ALGORITHMS["sac"] = project_class
    model.learn(training.learning_starts + 200)  # past the warm-up, updates running
    t0 = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print one JSON object (the only output format)")
    p.add_argument("--steps", type=int, default=1500, help="timed steps per side and round (default 1500)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--net-arch", type=int, nargs="+", default=[128, 128])
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    training = dataclasses.replace(
        TrainingSettings(), net_arch=tuple(args.net_arch), batch_size=args.batch_size, learning_starts=500
    )
    rounds: dict[str, list[float]] = {"project": [], "sb3_default": [], "sb3_fused": []}
    for _ in range(args.rounds):
        for side, values in rounds.items():
            values.append(steps_per_s(training, side, args.steps))
    p50, d50, f50 = (statistics.median(rounds[k]) for k in ("project", "sb3_default", "sb3_fused"))
    print(json.dumps({
        "project_steps_per_s": round(p50, 1),
        "sb3_default_steps_per_s": round(d50, 1),
        "ratio": round(p50 / d50, 3),
        "sb3_fused_steps_per_s": round(f50, 1),
        "rounds": {k: [round(v, 1) for v in values] for k, values in rounds.items()},
        "net_arch": list(args.net_arch),
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
