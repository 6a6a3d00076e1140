"""`SoundGym/PresetMatch-v0`: one preset-matching episode at a time (Gymnasium `Env`).

Input: an action in the flat Box of `agents.match.actions` (selector or flat mode). Output: the
observation of `agents.match.layout`, the reward of `agents.match.engine`, `terminated` when the
perceptual loss falls under `match.epsilon`. Truncation at T = `match.max_steps` is a `TimeLimit`
wrapper, as Gymnasium does it: `make_env(settings)` or `gymnasium.make(ENV_ID,
max_episode_steps=T)`. Info: `stage`, `loss`, `best_loss`, `step`, `is_success`, `module`.

`reset(options=...)` takes `{"target": [24] normalized vector}` to match a given preset and
`{"stage": S}` to change the curriculum stage.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import TimeLimit

from agents.match.actions import SELECTOR_MODULES
from agents.match.curriculum import TargetSampler, factory_vectors
from agents.match.engine import MatchEngine
from agents.match.probe import Hearing, Renderer
from settings.loader import Settings, load_settings, with_overrides

ENV_ID = "SoundGym/PresetMatch-v0"


class PresetMatchEnv(gym.Env[np.ndarray, np.ndarray]):
    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention)

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        stage: int | None = None,
        renderer: Renderer | None = None,
        hearing: Hearing | None = None,
    ) -> None:
        settings = settings if settings is not None else load_settings()
        if stage is not None:
            settings = with_overrides(settings, {"match.stage": stage})
        self.settings = settings
        self.engine = MatchEngine(1, settings, renderer=renderer, hearing=hearing, time_limit=None)
        self.observation_space = self.engine.layout.space
        self.action_space = self.engine.codec.space
        self._factory = factory_vectors()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self.engine.rng = np.random.default_rng(seed)
            self.engine.sampler = TargetSampler(seed, self._factory, self.settings.match.factory_prob)
        options = options or {}
        if "stage" in options:
            self.engine.set_stage(int(options["stage"]))
        target = options.get("target")
        targets = None if target is None else np.asarray(target, dtype=np.float32).reshape(1, -1)
        self.engine.reset_rows(np.array([0]), targets)
        return self.engine.observe()[0], self.engine.row_info(0)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        result = self.engine.step(np.asarray(action, dtype=np.float32).reshape(1, -1))
        info = self.engine.row_info(0)
        selected = int(result.selected[0])
        info["module"] = SELECTOR_MODULES[selected] if selected >= 0 else "all"
        return result.obs[0], float(result.reward[0]), bool(result.terminated[0]), False, info


def make_env(
    settings: Settings | None = None,
    *,
    stage: int | None = None,
    renderer: Renderer | None = None,
    hearing: Hearing | None = None,
) -> gym.Env:
    """The single environment with its `TimeLimit` (T = `match.max_steps`)."""
    settings = settings if settings is not None else load_settings()
    env = PresetMatchEnv(settings, stage=stage, renderer=renderer, hearing=hearing)
    return TimeLimit(env, max_episode_steps=settings.match.max_steps)
