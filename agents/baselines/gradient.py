"""Gradient descent through the differentiable synth: Adam on the stage's continuous parameters.

Input: a `MatchProblem` and a step budget (50 and 500 in the benchmarks; one render per step and
target). Output: `BaselineResult`. The parameters live as logits (x = sigmoid(z)) so they stay in
[0, 1]; discrete parameters stay at their start values (the renderer snaps them; no gradient
flows through a rounding). All targets are optimised together; each target's loss only depends on
its own parameters, so the summed loss gives each its own gradient.
"""

from __future__ import annotations

import numpy as np
import torch

from agents.baselines.common import BaselineResult, MatchProblem, Tracker
from synth.params import DISCRETE_INDICES, snap_vector

LEARNING_RATE = 0.1


def gradient_descent(problem: MatchProblem, budget: int, seed: int = 0) -> BaselineResult:
    if budget <= 0:
        raise ValueError(f"the step budget must be > 0, got {budget}")
    torch.manual_seed(seed)
    tracker = Tracker(problem)
    trainable = np.array([i for i in problem.active_idx if i not in DISCRETE_INDICES], dtype=np.int64)
    fixed = torch.from_numpy(snap_vector(problem.starts))
    start = problem.starts[:, trainable].clip(1e-3, 1 - 1e-3)
    z = torch.tensor(np.log(start / (1 - start)), dtype=torch.float32, requires_grad=True)
    optimiser = torch.optim.Adam([z], lr=LEARNING_RATE)
    rows = np.arange(problem.n_targets)
    index = torch.from_numpy(trainable)
    for _ in range(budget):
        x = fixed.clone()
        x[:, index] = torch.sigmoid(z)
        audio = problem.renderer(x)
        loss = problem.hearing.loss(audio, problem.cache)
        optimiser.zero_grad()
        loss.sum().backward()
        values = x.detach().numpy()
        losses = loss.detach().double().numpy()
        problem.renders += len(rows)
        tracker.record(rows, values, losses)
        tracker.snapshot(rows)
        optimiser.step()
    return tracker.result()
