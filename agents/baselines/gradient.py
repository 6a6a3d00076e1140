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
cosine-decayed one, and may race extra starts (`extra_starts` [P, S - 1, 24]): each of the S starts
of a target runs `race_steps` steps (S renders a step), then the start with the lowest loss so far
continues alone, its Adam state kept, for the rest of the budget (`budget - S * race_steps` steps).
With `lm` (`agents.baselines.levenberg`), a target whose best loss falls under `lm.below` (after the
race) takes Levenberg-Marquardt steps instead of Adam's, and its renders are then scored with the
environment's own (no-grad) loss, so that an exact match scores 0 as there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from agents.baselines.common import BaselineResult, MatchProblem, Tracker
from agents.baselines.levenberg import LevenbergMarquardt, LMPhase
from agents.match.probe import take_rows
from features.loss import PerceptualLoss
from features.loss_residual import MRSTFTResidual
from synth.params import DISCRETE_INDICES, N_PARAMS, snap_vector

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
    extra_starts: np.ndarray | None = None,
    race_steps: int = 0,
    lm: LevenbergMarquardt | None = None,
) -> BaselineResult:
    """Adam from `problem.starts` (and `extra_starts`, raced) for `budget` renders per target; with
    `lm`, Levenberg-Marquardt steps for the targets it brought under `lm.below`."""
    if budget <= 0:
        raise ValueError(f"the step budget must be > 0, got {budget}")
    n_starts = 1
    if extra_starts is not None:
        extra_starts = np.asarray(extra_starts, dtype=np.float32)
        if extra_starts.ndim != 3 or extra_starts.shape[0] != problem.n_targets or extra_starts.shape[2] != N_PARAMS:
            raise ValueError(
                f"extra_starts must have shape [{problem.n_targets}, S, {N_PARAMS}], got {extra_starts.shape}"
            )
        n_starts += extra_starts.shape[1]
    if n_starts > 1 and (race_steps < 1 or n_starts * race_steps >= budget):
        raise ValueError(
            f"racing {n_starts} starts for race_steps={race_steps} each needs 1 <= race_steps and "
            f"{n_starts} * race_steps < budget={budget}"
        )
    torch.manual_seed(seed)
    tracker = Tracker(problem)
    trainable = np.array([i for i in problem.active_idx if i not in DISCRETE_INDICES], dtype=np.int64)
    bar = tqdm(total=budget * problem.n_targets, unit="render", desc="gradient", disable=not progress)
    for lo in range(0, problem.n_targets, CHUNK_TARGETS):
        rows = np.arange(lo, min(lo + CHUNK_TARGETS, problem.n_targets))
        starts = problem.starts[rows][:, None]
        if extra_starts is not None:
            starts = np.concatenate([starts, extra_starts[rows]], axis=1)
        _descend(problem, tracker, rows, starts, trainable, budget, schedule, race_steps, lm)
        bar.update(budget * len(rows))
    bar.close()
    return tracker.result()


def _descend(
    problem: MatchProblem,
    tracker: Tracker,
    rows: np.ndarray,
    starts: np.ndarray,
    trainable: np.ndarray,
    budget: int,
    schedule: AdamSchedule,
    race_steps: int,
    lm: LevenbergMarquardt | None = None,
) -> None:
    """Adam on one chunk of targets; `starts` [C, S, 24]. Start s of target i renders at batch
    position s * C + i (its target copy too); the race's winners then render at positions 0..C-1."""
    n_rows, n_starts = starts.shape[:2]
    flat = starts.transpose(1, 0, 2).reshape(n_starts * n_rows, N_PARAMS)
    fixed = torch.from_numpy(snap_vector(flat))
    start = flat[:, trainable].clip(1e-3, 1 - 1e-3)
    z = torch.tensor(np.log(start / (1 - start)), dtype=torch.float32, requires_grad=True)
    optimiser = torch.optim.Adam([z], lr=schedule.lr, betas=(schedule.beta1, 0.999))
    index = torch.from_numpy(trainable)
    with torch.no_grad():
        copies = np.tile(problem.targets[rows], (n_starts, 1))
        cache = problem.hearing.cache_targets(problem.renderer(torch.from_numpy(copies)))
    steps = budget - (n_starts - 1) * race_steps  # the steps of the start that goes the distance
    live_rows = np.tile(rows, n_starts)
    race_best = np.full(len(live_rows), np.inf)
    phase: LMPhase | None = None
    for step in range(steps):
        if n_starts > 1 and step == race_steps:
            winners = torch.from_numpy(race_best.reshape(n_starts, n_rows).argmin(axis=0) * n_rows + np.arange(n_rows))
            z, optimiser = _keep_rows(z, optimiser, winners)
            fixed = fixed[winners]
            cache = take_rows(cache, torch.arange(n_rows))
            live_rows = rows
        if lm is not None and phase is None and len(live_rows) == n_rows:
            phase = _lm_phase(problem, lm, rows, fixed, index)
        for group in optimiser.param_groups:
            group["lr"] = schedule.lr_at(step, steps)
        rendered_z = z.detach().double() if phase is None else phase.candidates(z)  # float64 logits
        x = fixed.clone()
        lm_rows = phase.active if phase is not None else torch.zeros(len(live_rows), dtype=torch.bool)
        adam = not bool(lm_rows.all())
        if adam:
            x[:, index] = torch.sigmoid(z)
            loss = problem.hearing.loss(problem.renderer(x), cache)
            optimiser.zero_grad()
            loss.sum().backward()
        if lm_rows.any():  # the environment's loss for the Levenberg-Marquardt targets
            with torch.no_grad():
                x = x.detach()
                x[:, index] = torch.where(lm_rows[:, None], torch.sigmoid(rendered_z).float(), x[:, index])
                env_loss = problem.hearing.loss(problem.renderer(x), cache)
            loss = torch.where(lm_rows, env_loss, loss.detach()) if adam else env_loss
        problem.renders += len(live_rows)
        losses = loss.detach().double().numpy()
        if len(live_rows) > n_rows:
            race_best = np.minimum(race_best, losses)
        tracker.record(live_rows, x.detach().numpy(), losses)
        for _ in range(len(live_rows) // n_rows):  # one best-so-far entry per render of each target
            tracker.snapshot(rows)
        if adam:
            optimiser.step()
        if phase is not None:
            phase.step(rendered_z, torch.from_numpy(losses), z)


def _lm_phase(
    problem: MatchProblem, lm: LevenbergMarquardt, rows: np.ndarray, fixed: torch.Tensor, index: torch.Tensor
) -> LMPhase:
    """The Levenberg-Marquardt state of a chunk whose targets render at positions 0..C-1; the targets'
    residual spectra through the differentiable render path, as the Jacobian's renders take it."""
    loss_module = getattr(problem.hearing, "loss_module", None)
    if not isinstance(loss_module, PerceptualLoss):
        raise TypeError(
            f"Levenberg-Marquardt steps need a hearing with a PerceptualLoss, got {type(problem.hearing).__name__}"
        )
    residual = MRSTFTResidual(loss_module)
    audio = problem.renderer(torch.from_numpy(problem.targets[rows]).double().requires_grad_(True))
    return LMPhase(lm, problem.renderer, residual, residual.prepare(audio), fixed, index)


def _keep_rows(
    z: torch.Tensor, optimiser: torch.optim.Adam, keep: torch.Tensor
) -> tuple[torch.Tensor, torch.optim.Adam]:
    """The rows `keep` of the logits and of Adam's moments, as a new leaf and optimiser."""
    state = optimiser.state[z]
    kept = z.detach()[keep].clone().requires_grad_(True)
    group = optimiser.param_groups[0]
    narrowed = torch.optim.Adam([kept], lr=group["lr"], betas=group["betas"])
    if state:  # after at least one step
        narrowed.state[kept] = {
            "step": state["step"].clone(),
            "exp_avg": state["exp_avg"][keep].clone(),
            "exp_avg_sq": state["exp_avg_sq"][keep].clone(),
        }
    return kept, narrowed
