"""Gradient descent through the differentiable synth: Adam on the stage's continuous parameters.

Input: a `MatchProblem`, a step budget (50 and 500 in the benchmarks; one render per step and
target) and an `AdamSchedule`. Output: `BaselineResult`. The parameters live as logits
(x = sigmoid(z)) so they stay in [0, 1]; discrete parameters stay at their start values (the
renderer snaps them; no gradient flows through a rounding). Targets are optimised together in
chunks of `CHUNK_TARGETS` (bounded autograd memory); each target's loss only depends on its own
parameters, so the summed loss gives each its own gradient. Each chunk re-renders its targets at
the batch positions its candidates take, so both hear the same noise.

The baseline runs Adam at a constant learning rate from the neutral start (`BASELINE_SCHEDULE`);
the hybrid match agent (`agents.match.refine`) runs the same loop from its policy's patch with a
cosine-decayed one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from agents.baselines.common import BaselineResult, MatchProblem, Tracker
from synth.params import DISCRETE_INDICES, snap_vector

CHUNK_TARGETS = 32


@dataclass(frozen=True)
class AdamSchedule:
    """Adam's learning rate (logit units) from `lr` at the first step down to `lr * lr_floor` at the
    last, on a half cosine (`lr_floor` 1: constant), and its first-moment decay `beta1`."""

    lr: float = 0.1
    lr_floor: float = 1.0
    beta1: float = 0.9

    def __post_init__(self) -> None:
        if not (self.lr > 0 and 0 < self.lr_floor <= 1 and 0 <= self.beta1 < 1):
            raise ValueError(
                f"Adam schedule needs lr > 0, 0 < lr_floor <= 1, 0 <= beta1 < 1; got lr={self.lr}, "
                f"lr_floor={self.lr_floor}, beta1={self.beta1}"
            )

    def lr_at(self, step: int, budget: int) -> float:
        """The learning rate of step `step` (0-based) of `budget`."""
        progress = step / max(1, budget - 1)
        return self.lr * (self.lr_floor + (1.0 - self.lr_floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


BASELINE_SCHEDULE = AdamSchedule()


def gradient_descent(
    problem: MatchProblem,
    budget: int,
    seed: int = 0,
    progress: bool = False,
    schedule: AdamSchedule = BASELINE_SCHEDULE,
) -> BaselineResult:
    if budget <= 0:
        raise ValueError(f"the step budget must be > 0, got {budget}")
    torch.manual_seed(seed)
    tracker = Tracker(problem)
    trainable = np.array([i for i in problem.active_idx if i not in DISCRETE_INDICES], dtype=np.int64)
    bar = tqdm(total=budget * problem.n_targets, unit="render", desc="gradient", disable=not progress)
    for lo in range(0, problem.n_targets, CHUNK_TARGETS):
        rows = np.arange(lo, min(lo + CHUNK_TARGETS, problem.n_targets))
        _descend(problem, tracker, rows, trainable, budget, schedule)
        bar.update(budget * len(rows))
    bar.close()
    return tracker.result()


def _descend(
    problem: MatchProblem,
    tracker: Tracker,
    rows: np.ndarray,
    trainable: np.ndarray,
    budget: int,
    schedule: AdamSchedule,
) -> None:
    fixed = torch.from_numpy(snap_vector(problem.starts[rows]))
    start = problem.starts[rows][:, trainable].clip(1e-3, 1 - 1e-3)
    z = torch.tensor(np.log(start / (1 - start)), dtype=torch.float32, requires_grad=True)
    optimiser = torch.optim.Adam([z], lr=schedule.lr, betas=(schedule.beta1, 0.999))
    index = torch.from_numpy(trainable)
    with torch.no_grad():
        cache = problem.hearing.cache_targets(problem.renderer(torch.from_numpy(problem.targets[rows])))
    for step in range(budget):
        for group in optimiser.param_groups:
            group["lr"] = schedule.lr_at(step, budget)
        x = fixed.clone()
        x[:, index] = torch.sigmoid(z)
        loss = problem.hearing.loss(problem.renderer(x), cache)
        optimiser.zero_grad()
        loss.sum().backward()
        problem.renders += len(rows)
        tracker.record(rows, x.detach().numpy(), loss.detach().double().numpy())
        tracker.snapshot(rows)
        optimiser.step()
