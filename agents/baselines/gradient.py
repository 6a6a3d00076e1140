"""Gradient descent through the differentiable synth: Adam on the stage's continuous parameters.

Input: a `MatchProblem` and a step budget (50 and 500 in the benchmarks; one render per step and
target). Output: `BaselineResult`. The parameters live as logits (x = sigmoid(z)) so they stay in
[0, 1]; discrete parameters stay at their start values (the renderer snaps them; no gradient
flows through a rounding). Targets are optimised together in chunks of `CHUNK_TARGETS` (bounded
autograd memory); each target's loss only depends on its own parameters, so the summed loss gives
each its own gradient. Each chunk re-renders its targets at the batch positions its candidates
take, so both hear the same noise.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from agents.baselines.common import BaselineResult, MatchProblem, Tracker
from synth.params import DISCRETE_INDICES, snap_vector

LEARNING_RATE = 0.1
CHUNK_TARGETS = 32


def gradient_descent(problem: MatchProblem, budget: int, seed: int = 0, progress: bool = False) -> BaselineResult:
    if budget <= 0:
        raise ValueError(f"the step budget must be > 0, got {budget}")
    torch.manual_seed(seed)
    tracker = Tracker(problem)
    trainable = np.array([i for i in problem.active_idx if i not in DISCRETE_INDICES], dtype=np.int64)
    bar = tqdm(total=budget * problem.n_targets, unit="render", desc="gradient", disable=not progress)
    for lo in range(0, problem.n_targets, CHUNK_TARGETS):
        rows = np.arange(lo, min(lo + CHUNK_TARGETS, problem.n_targets))
        _descend(problem, tracker, rows, trainable, budget)
        bar.update(budget * len(rows))
    bar.close()
    return tracker.result()


def _descend(problem: MatchProblem, tracker: Tracker, rows: np.ndarray, trainable: np.ndarray, budget: int) -> None:
    fixed = torch.from_numpy(snap_vector(problem.starts[rows]))
    start = problem.starts[rows][:, trainable].clip(1e-3, 1 - 1e-3)
    z = torch.tensor(np.log(start / (1 - start)), dtype=torch.float32, requires_grad=True)
    optimiser = torch.optim.Adam([z], lr=LEARNING_RATE)
    index = torch.from_numpy(trainable)
    with torch.no_grad():
        cache = problem.hearing.cache_targets(problem.renderer(torch.from_numpy(problem.targets[rows])))
    for _ in range(budget):
        x = fixed.clone()
        x[:, index] = torch.sigmoid(z)
        loss = problem.hearing.loss(problem.renderer(x), cache)
        optimiser.zero_grad()
        loss.sum().backward()
        problem.renders += len(rows)
        tracker.record(rows, x.detach().numpy(), loss.detach().double().numpy())
        tracker.snapshot(rows)
        optimiser.step()
