"""The batched core of preset matching: N episodes stepped with one render call.

Input: actions `[N, A]` (see `agents.match.actions`). Output: observations `[N, D]` (see
`agents.match.layout`), rewards, terminations, truncations and per-row info. One `step` renders
all N current patches in a single `render_batch` call; target features are computed once per
episode (at reset) and cached row by row. The single environment, the Gymnasium vector
environment and the SB3 adapter are thin faces over this class.

Episode: a target preset (training stream of `agents.match.curriculum`, or given), the neutral
patch on the stage's parameters (the target's values on the others), or with probability
`match.warm_start_prob` a noisy start near the target; terminate when the loss < epsilon; truncate
after `time_limit` steps when a limit is given (the vector faces; the single env uses TimeLimit).

Threads: `worker_threads` (default 1; the vector faces default to min(2, cores)) Python threads render
the batch (the default renderer) and hear it (row blocks of `agents.match.hearing`); the results do
not depend on the count.

Reward: -L_t + beta * max(0, best_prev - L_t) - lambda * ||delta||^2 - w_bound * (delta pushed
past 0 or 1) - w_silence * [render silent while the target is audible]. The loss's own anti-cheat
terms (DC, clipping) are inside L_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from agents.match.actions import ActionCodec
from agents.match.curriculum import TargetSampler, active_mask, check_stage, factory_vectors, start_vectors
from agents.match.heap import keep_freed_memory
from agents.match.layout import ObservationLayout, assemble, delta_features, logmel_image
from agents.match.probe import (
    Heard,
    Hearing,
    ProbeRenderer,
    Renderer,
    TargetCache,
    hear_and_loss,
    hear_targets,
    render_at,
    replace_rows,
)
from agents.match.threads import check_threads
from settings.loader import Settings
from synth.params import N_PARAMS, snap_vector


@dataclass
class StepResult:
    obs: np.ndarray  # [N, D]
    reward: np.ndarray  # [N] float32
    terminated: np.ndarray  # [N] bool
    truncated: np.ndarray  # [N] bool
    loss: np.ndarray  # [N] float32, after the step
    best_loss: np.ndarray  # [N]
    selected: np.ndarray  # [N] int, module chosen (-1 in flat mode)


class MatchEngine:
    """N preset-matching episodes in lockstep."""

    def __init__(
        self,
        n_envs: int,
        settings: Settings,
        *,
        renderer: Renderer | None = None,
        hearing: Hearing | None = None,
        time_limit: int | None = None,
        seed: int | None = None,
        worker_threads: int | None = None,
    ) -> None:
        self.worker_threads = 1 if worker_threads is None else check_threads(worker_threads)
        if n_envs <= 0:
            raise ValueError(f"need at least one environment, got n_envs={n_envs}")
        ms = settings.match
        if ms.epsilon <= 0 or ms.max_steps <= 0:
            raise ValueError(f"match.epsilon and match.max_steps must be > 0, got {ms.epsilon}, {ms.max_steps}")
        self.n = n_envs
        self.settings = settings
        keep_freed_memory(ms.heap_keep_mb)  # process-wide: no page faults on the per-step buffers
        self.stage = check_stage(ms.stage)
        self.codec = ActionCodec(ms.action_mode, ms.delta_max)
        self.renderer: Renderer = (
            renderer if renderer is not None else ProbeRenderer(settings, threads=self.worker_threads)
        )
        if hearing is None:
            from agents.match.hearing import FeaturesHearing

            hearing = FeaturesHearing(settings)
        self.hearing: Hearing = hearing
        self.time_limit = time_limit
        self.max_steps = ms.max_steps
        self.rng = np.random.default_rng(ms.seed if seed is None else seed)
        self.sampler = TargetSampler(ms.seed if seed is None else seed, factory_vectors(), ms.factory_prob)
        with torch.no_grad():
            probe = self.hearing.hear(self.renderer(torch.from_numpy(snap_vector(np.zeros((1, N_PARAMS))))))
        _, n_frames, n_mels = probe.logmel_db.shape
        self.layout = ObservationLayout(int(n_frames), int(n_mels), best_diff=ms.observe_best_diff)
        shape_img = (n_envs, n_frames, n_mels)
        self.x = np.zeros((n_envs, N_PARAMS), np.float32)  # internal vector, unsnapped
        self.target_x = np.zeros((n_envs, N_PARAMS), np.float32)
        self.active = np.zeros((n_envs, N_PARAMS), np.float32)
        self.row_stage = np.full(n_envs, self.stage, np.int64)
        self.t = np.zeros(n_envs, np.int64)
        self.loss = np.zeros(n_envs, np.float32)
        self.best_loss = np.zeros(n_envs, np.float32)
        self.best_x = np.zeros((n_envs, N_PARAMS), np.float32)
        self.cur_img = np.zeros(shape_img, np.float32)
        self.tgt_img = np.zeros(shape_img, np.float32)
        self.best_img = np.zeros(shape_img, np.float32)
        self.deltas = np.zeros((n_envs, 3), np.float32)
        self.target_loud_db = np.zeros(n_envs, np.float32)
        self.cur_loud_db = np.zeros(n_envs, np.float32)
        self.targets: TargetCache = {}
        self._tgt_heard: Heard | None = None

    # ---------------------------------------------------------------- stage and reset
    def set_stage(self, stage: int) -> None:
        """Stage for episodes that start from now on (running episodes keep theirs)."""
        self.stage = check_stage(stage)

    def reset_rows(self, rows: np.ndarray, targets_0to1: np.ndarray | None = None) -> None:
        """Start new episodes in `rows` (targets sampled from the training stream unless given)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return
        tgt = self.sampler.sample(len(rows)) if targets_0to1 is None else snap_vector(targets_0to1)
        if tgt.shape != (len(rows), N_PARAMS):
            raise ValueError(f"expected targets of shape [{len(rows)}, {N_PARAMS}], got {tgt.shape}")
        mask = active_mask(self.stage)
        start = start_vectors(tgt, self.stage)
        ms = self.settings.match
        warm = self.rng.random(len(rows)) < ms.warm_start_prob
        if warm.any():
            noise = self.rng.normal(0.0, ms.warm_start_noise, size=(int(warm.sum()), N_PARAMS)).astype(np.float32)
            start[warm] = np.clip(tgt[warm] + mask * noise, 0.0, 1.0)
        with torch.no_grad():  # each row renders at its own batch position, as in `step`
            tgt_audio = render_at(self.renderer, snap_vector(tgt), rows)
            cur_audio = render_at(self.renderer, snap_vector(start), rows)
            new_cache, tgt_heard = hear_targets(self.hearing, tgt_audio, threads=self.worker_threads)
            self._store_targets(rows, new_cache, tgt_heard)
            targets = {k: v[rows] for k, v in self.targets.items()}
            cur_heard, loss = hear_and_loss(self.hearing, cur_audio, targets, threads=self.worker_threads)
        self.target_x[rows] = tgt
        self.x[rows] = start
        self.active[rows] = mask
        self.row_stage[rows] = self.stage
        self.t[rows] = 0
        self.target_loud_db[rows] = tgt_heard.loudness_db.float().numpy()
        self._store_current(rows, cur_heard, loss.float().numpy())
        self.best_loss[rows] = self.loss[rows]
        self.best_x[rows] = start
        self.best_img[rows] = self.cur_img[rows]

    def _store_targets(self, rows: np.ndarray, cache: TargetCache, heard: Heard) -> None:
        index = torch.from_numpy(rows)
        if not self.targets:  # first reset: allocate full-size buffers shaped like the first batch
            self.targets = {k: torch.zeros((self.n, *v.shape[1:]), dtype=v.dtype) for k, v in cache.items()}
            self._tgt_heard = Heard(
                *(torch.zeros((self.n, *f.shape[1:]), dtype=f.dtype) for f in _fields(heard))  # type: ignore[arg-type]
            )
        replace_rows(self.targets, index, cache)
        assert self._tgt_heard is not None
        for buf, new in zip(_fields(self._tgt_heard), _fields(heard), strict=True):
            buf[index] = new.to(buf.dtype)
        self.tgt_img[rows] = logmel_image(heard)

    def _store_current(self, rows: np.ndarray | slice, heard: Heard, loss: np.ndarray) -> None:
        """Write the rows' features (`rows`: indices, or `slice(None)` for all rows: views, no gathers)."""
        assert self._tgt_heard is not None
        index = rows if isinstance(rows, slice) else torch.from_numpy(rows)
        tgt = Heard(*(f[index] for f in _fields(self._tgt_heard)))  # type: ignore[arg-type]
        self.cur_img[rows] = logmel_image(heard)
        self.deltas[rows] = delta_features(heard, tgt)
        self.cur_loud_db[rows] = heard.loudness_db.float().numpy()
        self.loss[rows] = loss

    # ---------------------------------------------------------------- step
    def step(self, actions: np.ndarray) -> StepResult:
        deltas, selected = self.codec.decode(actions)
        if deltas.shape[0] != self.n:
            raise ValueError(f"expected {self.n} actions, got {deltas.shape[0]}")
        deltas *= self.active
        proposed = self.x + deltas
        self.x = np.clip(proposed, 0.0, 1.0)
        pushed = np.abs(proposed - self.x).sum(axis=1)
        with torch.no_grad():
            audio = self.renderer(torch.from_numpy(snap_vector(self.x)))
            heard, loss_t = hear_and_loss(self.hearing, audio, self.targets, threads=self.worker_threads)
            loss = loss_t.float().numpy()
        self._store_current(slice(None), heard, loss)
        ms = self.settings.match
        silent = (self.cur_loud_db < ms.silence_db) & (self.target_loud_db >= ms.silence_db)
        improvement = np.maximum(0.0, self.best_loss - loss)
        reward = (
            -loss
            + ms.beta * improvement
            - ms.lambda_smooth * (deltas**2).sum(axis=1)
            - ms.w_bound * pushed
            - ms.w_silence * silent
        ).astype(np.float32)
        better = loss < self.best_loss
        self.best_loss = np.minimum(self.best_loss, loss)
        self.best_x[better] = self.x[better]
        self.best_img[better] = self.cur_img[better]
        self.t += 1
        terminated = loss < ms.epsilon
        if self.time_limit is None:
            truncated = np.zeros(self.n, dtype=bool)
        else:
            truncated = (self.t >= self.time_limit) & ~terminated
        return StepResult(
            obs=self.observe(),
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            loss=loss.astype(np.float32),
            best_loss=self.best_loss.copy(),
            selected=selected,
        )

    def observe(self, rows: np.ndarray | None = None) -> np.ndarray:
        r = slice(None) if rows is None else np.asarray(rows, dtype=np.int64)  # all rows: views, not copies
        return assemble(
            self.layout,
            self.cur_img[r],
            self.tgt_img[r],
            self.deltas[r],
            self.x[r],
            self.active[r],
            np.minimum(self.t[r] / self.max_steps, 1.0),
            self.best_img[r] if self.layout.best_diff else None,
        )

    def row_info(self, row: int) -> dict[str, object]:
        return {
            "stage": int(self.row_stage[row]),
            "loss": float(self.loss[row]),
            "best_loss": float(self.best_loss[row]),
            "step": int(self.t[row]),
            "is_success": bool(self.loss[row] < self.settings.match.epsilon),
        }


def _fields(heard: Heard) -> tuple[torch.Tensor, ...]:
    return (heard.logmel_db, heard.mfcc, heard.centroid_hz, heard.loudness_db)
