"""Vectorized preset matching: a Gymnasium `VectorEnv` and a Stable-Baselines3 `VecEnv` adapter.

Input: actions `[N, A]`. Output: observations `[N, D]`, rewards, terminations, truncations, info.
Both faces wrap one `MatchEngine`, so each step renders all N environments in one batched call and
target features are cached per episode. Both reset finished environments in the same step
(Gymnasium's `SAME_STEP` autoreset: the last observation of an episode is in
`infos["final_obs"]`; SB3: in `infos[i]["terminal_observation"]`). Truncation at
T = `match.max_steps` happens inside the engine (a vector env has no per-env TimeLimit wrapper).
`worker_threads` (argument, else `match.worker_threads`, else min(2, cores)): Python threads that
render and hear the batch; observations, rewards and infos are identical for any count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from stable_baselines3.common.vec_env import VecEnv

from agents.match.curriculum import TargetSampler, factory_vectors
from agents.match.engine import MatchEngine, StepResult
from agents.match.probe import Hearing, Renderer
from agents.match.threads import default_threads
from settings.loader import Settings, load_settings, with_overrides


def _engine(
    num_envs: int | None,
    settings: Settings | None,
    stage: int | None,
    renderer: Renderer | None,
    hearing: Hearing | None,
    max_episode_steps: int | None = None,
    worker_threads: int | None = None,
) -> MatchEngine:
    settings = settings if settings is not None else load_settings()
    if stage is not None:
        settings = with_overrides(settings, {"match.stage": stage})
    if max_episode_steps is not None:  # gymnasium.make_vec passes the registered time limit
        settings = with_overrides(settings, {"match.max_steps": max_episode_steps})
    n = settings.match.n_envs if num_envs is None else num_envs
    if worker_threads is None:
        worker_threads = settings.match.worker_threads
    worker_threads = default_threads() if worker_threads is None else worker_threads
    return MatchEngine(
        n,
        settings,
        renderer=renderer,
        hearing=hearing,
        time_limit=settings.match.max_steps,
        worker_threads=worker_threads,
    )


def _reseed(engine: MatchEngine, seed: int) -> None:
    engine.rng = np.random.default_rng(seed)
    engine.sampler = TargetSampler(seed, factory_vectors(), engine.settings.match.factory_prob)


class PresetMatchVectorEnv(VectorEnv):
    """N environments, one batched render per step (Gymnasium vector API, SAME_STEP autoreset)."""

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP}  # noqa: RUF012

    def __init__(
        self,
        num_envs: int | None = None,
        settings: Settings | None = None,
        *,
        stage: int | None = None,
        renderer: Renderer | None = None,
        hearing: Hearing | None = None,
        max_episode_steps: int | None = None,
        worker_threads: int | None = None,
    ) -> None:
        self.engine = _engine(num_envs, settings, stage, renderer, hearing, max_episode_steps, worker_threads)
        self.num_envs = self.engine.n
        self.single_observation_space = self.engine.layout.space
        self.single_action_space = self.engine.codec.space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            _reseed(self.engine, seed)
            self.action_space.seed(seed)
        options = options or {}
        if "stage" in options:
            self.engine.set_stage(int(options["stage"]))
        targets = options.get("targets")
        self.engine.reset_rows(np.arange(self.num_envs), None if targets is None else np.asarray(targets))
        return self.engine.observe(), self._infos(None)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        result = self.engine.step(np.asarray(actions))
        done = result.terminated | result.truncated
        infos = self._infos(result)
        obs = result.obs
        if done.any():
            rows = np.flatnonzero(done)
            final_obs = np.empty(self.num_envs, dtype=object)
            final_obs[rows] = list(obs[rows])
            infos["final_obs"], infos["_final_obs"] = final_obs, done.copy()
            infos["final_info"] = {k: v.copy() for k, v in infos.items() if not k.startswith(("final", "_final"))}
            self.engine.reset_rows(rows)
            obs = obs.copy()
            obs[rows] = self.engine.observe(rows)
            for key in ("stage", "loss", "best_loss", "step"):
                infos[key] = self._infos(None)[key]
        return obs, result.reward, result.terminated, result.truncated, infos

    def _infos(self, result: StepResult | None) -> dict[str, np.ndarray]:
        e = self.engine
        infos: dict[str, np.ndarray] = {
            "stage": e.row_stage.copy(),
            "loss": e.loss.copy(),
            "best_loss": e.best_loss.copy(),
            "step": e.t.copy(),
        }
        if result is not None:
            infos["is_success"] = result.terminated.copy()
            infos["module"] = result.selected.copy()
        return infos

    def set_stage(self, stage: int) -> None:
        self.engine.set_stage(stage)


class PresetMatchVecEnv(VecEnv):
    """The same batched core as an SB3 `VecEnv` (SAC, PPO, TD3 train on it directly)."""

    render_mode = None

    def __init__(
        self,
        num_envs: int | None = None,
        settings: Settings | None = None,
        *,
        stage: int | None = None,
        renderer: Renderer | None = None,
        hearing: Hearing | None = None,
        worker_threads: int | None = None,
    ) -> None:
        self.engine = _engine(num_envs, settings, stage, renderer, hearing, worker_threads=worker_threads)
        self._actions: np.ndarray | None = None
        super().__init__(self.engine.n, self.engine.layout.space, self.engine.codec.space)

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]
        if seed is not None:
            _reseed(self.engine, seed)
        self.engine.reset_rows(np.arange(self.num_envs))
        self._reset_seeds()
        self.reset_infos = [self.engine.row_info(i) for i in range(self.num_envs)]
        return self.engine.observe()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float32)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        result = self.engine.step(self._actions)
        self._actions = None
        done = result.terminated | result.truncated
        infos = [self.engine.row_info(i) for i in range(self.num_envs)]
        obs = result.obs
        if done.any():
            rows = np.flatnonzero(done)
            for i in rows:
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = bool(result.truncated[i] and not result.terminated[i])
                infos[i]["episode_best_loss"] = float(result.best_loss[i])
            self.engine.reset_rows(rows)
            obs = obs.copy()
            obs[rows] = self.engine.observe(rows)
        return obs, result.reward, done, infos

    def close(self) -> None:
        self._actions = None

    def set_stage(self, stage: int) -> None:
        self.engine.set_stage(stage)

    # SB3's VecEnv plumbing: one object stands for all N environments.
    def _indices(self, indices: int | Iterable[int] | None) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices: int | Iterable[int] | None = None) -> list[Any]:
        value = getattr(self, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: int | Iterable[int] | None = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: int | Iterable[int] | None = None, **method_kwargs: Any
    ) -> list[Any]:
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._indices(indices)]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: int | Iterable[int] | None = None
    ) -> list[bool]:
        return [False for _ in self._indices(indices)]
