"""The shared protocol of the preset-matching baselines: a batch of targets, a render budget.

Input: target presets `[P, 24]`, a curriculum stage (the same start vectors and held parameters as
the environment), a renderer and a hearing (`agents.match.probe`). Output: `MatchProblem.evaluate`
turns candidate vectors `[K, 24]` for given target rows into losses `[K]`, rendering in chunks;
`BaselineResult` holds what every baseline reports per target: the best vector and its loss, the
number of renders that first reached epsilon (-1: never), and the best-so-far trajectory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from agents.match.curriculum import active_mask, start_vectors
from agents.match.probe import Hearing, Renderer, TargetCache, render_at, take_rows
from synth.params import N_PARAMS, snap_vector

CHUNK_ROWS = 256  # renders per batched call


@dataclass
class BaselineResult:
    best_x: np.ndarray  # [P, 24]
    best_loss: np.ndarray  # [P]
    renders_to_eps: np.ndarray  # [P] int, -1 when epsilon was never reached
    renders: np.ndarray  # [P] renders spent
    trajectories: list[list[np.ndarray]] = field(default_factory=list)  # per target: best-so-far vectors


class MatchProblem:
    """Targets rendered and analysed once; candidates evaluated against them in batches.

    `synth.render.render_batch` draws noise per batch position, so a candidate must render at the
    position its target was rendered at. With P targets, each target is rendered (and cached) at
    `copies` = CHUNK_ROWS // P positions (1 when P > CHUNK_ROWS), so up to `copies` candidates of
    one target share a batch; further candidates go to the next batch.
    """

    def __init__(
        self,
        targets_0to1: np.ndarray,
        stage: int,
        renderer: Renderer,
        hearing: Hearing,
        epsilon: float,
    ) -> None:
        targets = np.asarray(targets_0to1, dtype=np.float32)
        if targets.ndim != 2 or targets.shape[1] != N_PARAMS or len(targets) == 0:
            raise ValueError(f"targets must have shape [P, {N_PARAMS}] with P > 0, got {targets.shape}")
        self.targets = snap_vector(targets)
        self.stage = stage
        self.mask = active_mask(stage)
        self.active_idx = np.flatnonzero(self.mask)
        self.starts = start_vectors(self.targets, stage)
        self.renderer = renderer
        self.hearing = hearing
        self.epsilon = epsilon
        self.renders = 0
        self.copies = max(1, CHUNK_ROWS // len(self.targets))
        copies = np.repeat(self.targets, self.copies, axis=0)  # cache row q = target q // copies
        caches: list[TargetCache] = []
        with torch.no_grad():
            for lo in range(0, len(copies), CHUNK_ROWS):
                audio = renderer(torch.from_numpy(copies[lo : lo + CHUNK_ROWS]))
                caches.append(hearing.cache_targets(audio))
        self.cache: TargetCache = {k: torch.cat([c[k] for c in caches]) for k in caches[0]}

    @property
    def n_targets(self) -> int:
        return len(self.targets)

    def full_vectors(self, rows: np.ndarray, active_values: np.ndarray) -> np.ndarray:
        """Candidates on the active parameters -> full [K, 24] vectors (held ones from the target)."""
        out = self.targets[rows].copy()
        out[:, self.active_idx] = np.clip(active_values, 0.0, 1.0)
        return out

    def evaluate(self, rows: np.ndarray, candidates_0to1: np.ndarray) -> np.ndarray:
        """Losses [K] of candidates [K, 24] against the targets `rows` [K] (no gradient)."""
        rows = np.asarray(rows, dtype=np.int64)
        candidates = snap_vector(np.asarray(candidates_0to1, dtype=np.float32))
        occurrence = np.zeros(len(rows), dtype=np.int64)
        seen: dict[int, int] = {}
        for k, row in enumerate(rows):
            occurrence[k] = seen.get(int(row), 0)
            seen[int(row)] = occurrence[k] + 1
        cache_rows = rows * self.copies + occurrence % self.copies
        positions = cache_rows % CHUNK_ROWS
        rounds = occurrence // self.copies
        out = np.empty(len(rows), dtype=np.float64)
        with torch.no_grad():
            for r in range(int(rounds.max()) + 1 if len(rows) else 0):
                for lo in range(0, CHUNK_ROWS * (1 + int(cache_rows.max()) // CHUNK_ROWS), CHUNK_ROWS):
                    pick = np.flatnonzero((rounds == r) & (cache_rows >= lo) & (cache_rows < lo + CHUNK_ROWS))
                    if len(pick) == 0:
                        continue
                    audio = render_at(self.renderer, candidates[pick], positions[pick])
                    cache = take_rows(self.cache, torch.from_numpy(cache_rows[pick]))
                    out[pick] = self.hearing.loss(audio, cache).double().numpy()
        self.renders += len(rows)
        return out


class Tracker:
    """Best-so-far bookkeeping per target, render by render."""

    def __init__(self, problem: MatchProblem) -> None:
        p = problem.n_targets
        self.epsilon = problem.epsilon
        self.best_x = problem.starts.copy()
        self.best_loss = np.full(p, np.inf)
        self.renders = np.zeros(p, dtype=np.int64)
        self.renders_to_eps = np.full(p, -1, dtype=np.int64)
        self.trajectories: list[list[np.ndarray]] = [[] for _ in range(p)]

    def record(self, rows: np.ndarray, candidates: np.ndarray, losses: np.ndarray) -> None:
        """Candidates are in render order within each target row."""
        for row, x, loss in zip(rows, candidates, losses, strict=True):
            self.renders[row] += 1
            if loss < self.best_loss[row]:
                self.best_loss[row] = loss
                self.best_x[row] = x
            if self.renders_to_eps[row] < 0 and loss < self.epsilon:
                self.renders_to_eps[row] = self.renders[row]

    def snapshot(self, rows: np.ndarray) -> None:
        for row in rows:
            self.trajectories[row].append(self.best_x[row].copy())

    def result(self) -> BaselineResult:
        return BaselineResult(
            best_x=self.best_x.copy(),
            best_loss=self.best_loss.astype(np.float32),
            renders_to_eps=self.renders_to_eps.copy(),
            renders=self.renders.copy(),
            trajectories=self.trajectories,
        )
