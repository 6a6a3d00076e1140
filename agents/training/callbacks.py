"""SB3 callbacks shared by both tasks: progress bar, learning curve, periodic evaluation, checkpoints.

Input: the running SB3 model (through `BaseCallback`), an evaluation environment and a model
directory. Training stops early (returns False) once `max_wall_s` seconds have passed.
Output, in the model directory:
- `checkpoints/step_<N>.zip` (+ `step_<N>_replay.pkl` for off-policy algorithms, only the newest
  kept: buffers are tens of MB) every N steps,
  with `checkpoints/curve.json` (the learning curve so far) written beside them, so that
  `--resume` restarts from the newest complete checkpoint;
- TensorBoard scalars (`eval/mean_reward`, `eval/mean_rmse`, `rollout/...`) through SB3's logger;
- the curve itself in `LearningCurve` (episode returns and periodic evaluations) for the report.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm


@dataclass
class LearningCurve:
    """Episode returns during training and periodic deterministic evaluations."""

    episodes: list[dict[str, float]] = field(default_factory=list)  # {"step", "return", "rmse"}
    evaluations: list[dict[str, float]] = field(default_factory=list)  # {"step", "mean_return", "mean_rmse"}

    def to_json(self) -> dict[str, Any]:
        return {"episodes": self.episodes, "evaluations": self.evaluations}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LearningCurve:
        return cls(list(data.get("episodes", [])), list(data.get("evaluations", [])))


def evaluate_episodes(model: BaseAlgorithm, env: gym.Env, n_episodes: int, seed: int) -> dict[str, float]:
    """Deterministic rollouts: mean return and mean per-step `info["rmse"]` (when the env reports it)."""
    returns, rmses = [], []
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            if "rmse" in info:
                rmses.append(float(info["rmse"]))
            done = terminated or truncated
        returns.append(total)
    return {
        "mean_return": float(np.mean(returns)),
        "mean_rmse": float(np.mean(rmses)) if rmses else float("nan"),
    }


class TrainingCallback(BaseCallback):
    """Progress bar + learning curve + evaluation every `eval_every` + checkpoint every `checkpoint_every`."""

    def __init__(
        self,
        *,
        total_steps: int,
        curve: LearningCurve,
        checkpoint_dir: Path,
        checkpoint_every: int,
        eval_env: gym.Env | None,
        eval_every: int,
        eval_episodes: int,
        eval_seed: int,
        progress: bool = True,
        max_wall_s: float = 0.0,
    ) -> None:
        super().__init__()
        self.max_wall_s = float(max_wall_s)
        self._started = time.monotonic()
        self.stopped_by_time = False
        self.total_steps = int(total_steps)
        self.curve = curve
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = int(checkpoint_every)
        self.eval_env = eval_env
        self.eval_every = int(eval_every)
        self.eval_episodes = int(eval_episodes)
        self.eval_seed = int(eval_seed)
        self.progress = progress
        self._bar: tqdm | None = None
        self._episode_rmse: list[float] = []

    def _on_training_start(self) -> None:
        self._started = time.monotonic()
        self._bar = tqdm(
            total=self.total_steps, initial=self.num_timesteps, unit="step", desc="training", disable=not self.progress
        )

    def _on_step(self) -> bool:
        step = self.num_timesteps
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
        for info in self.locals.get("infos", []):
            if "rmse" in info:
                self._episode_rmse.append(float(info["rmse"]))
            episode = info.get("episode")
            if episode is not None:
                rmse = float(np.mean(self._episode_rmse)) if self._episode_rmse else float("nan")
                self.curve.episodes.append({"step": step, "return": float(episode["r"]), "rmse": rmse})
                self.logger.record("rollout/episode_rmse", rmse)
                self._episode_rmse = []
        if self.eval_env is not None and self.eval_every > 0 and step % self.eval_every == 0:
            self.run_evaluation()
        if self.checkpoint_every > 0 and step % self.checkpoint_every == 0:
            save_checkpoint(self.model, self.checkpoint_dir, self.curve)
        if self.max_wall_s > 0 and time.monotonic() - self._started > self.max_wall_s:
            self.stopped_by_time = True
            return False
        return True

    def run_evaluation(self) -> dict[str, float]:
        assert self.eval_env is not None  # internal invariant: only called with an eval env
        result = evaluate_episodes(self.model, self.eval_env, self.eval_episodes, self.eval_seed)
        self.curve.evaluations.append({"step": self.num_timesteps, **result})
        self.logger.record("eval/mean_reward", result["mean_return"])
        self.logger.record("eval/mean_rmse", result["mean_rmse"])
        self.logger.dump(self.num_timesteps)
        if self._bar is not None:
            self._bar.set_postfix(eval_rmse=f"{result['mean_rmse']:.3f}")
        return result

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.close()


# -- checkpoints -------------------------------------------------------------------------------


def checkpoint_paths(checkpoint_dir: Path, step: int) -> tuple[Path, Path]:
    return checkpoint_dir / f"step_{step}.zip", checkpoint_dir / f"step_{step}_replay.pkl"


def save_checkpoint(model: BaseAlgorithm, checkpoint_dir: Path, curve: LearningCurve) -> Path:
    """Write model (+ replay buffer) and curve atomically enough that a SIGKILL leaves the last one whole.

    Files are written under temporary names and renamed; the `.zip` is renamed last, so a zip
    that exists is always complete and its replay buffer and curve are already in place.
    """
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    step = int(model.num_timesteps)
    zip_path, replay_path = checkpoint_paths(checkpoint_dir, step)
    if hasattr(model, "replay_buffer") and getattr(model, "replay_buffer", None) is not None:
        tmp = checkpoint_dir / f"tmp_replay_{step}.part"
        model.save_replay_buffer(str(tmp))  # type: ignore[attr-defined]
        os.replace(tmp, replay_path)
    curve_tmp = checkpoint_dir / f"curve_{step}.json.tmp"
    curve_tmp.write_text(json.dumps(curve.to_json()), encoding="utf-8")
    os.replace(curve_tmp, checkpoint_dir / f"curve_{step}.json")
    tmp_zip = checkpoint_dir / f"tmp_step_{step}.part"
    model.save(str(tmp_zip))
    os.replace(tmp_zip, zip_path)
    for old in checkpoint_dir.glob("step_*_replay.pkl"):  # replay buffers are large: keep the newest only
        if old != replay_path:
            old.unlink()
    return zip_path


def latest_checkpoint(checkpoint_dir: Path) -> tuple[int, Path] | None:
    """The newest complete checkpoint `(step, zip path)`, or None when there is none."""
    if not checkpoint_dir.is_dir():
        return None
    found: list[tuple[int, Path]] = []
    for path in checkpoint_dir.glob("step_*.zip"):
        stem = path.stem.removeprefix("step_")
        if stem.isdigit():
            found.append((int(stem), path))
    return max(found) if found else None


def load_curve(checkpoint_dir: Path, step: int) -> LearningCurve:
    """The curve saved with checkpoint `step` (empty when missing); a corrupt file raises ValueError."""
    path = checkpoint_dir / f"curve_{step}.json"
    if not path.exists():
        return LearningCurve()
    try:
        return LearningCurve.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ValueError(f"{path}: corrupt learning-curve file ({exc})") from exc


def resume_latest(
    checkpoint_dir: Path, algorithm: str, env: Any, training: Any
) -> tuple[BaseAlgorithm, int, Path, LearningCurve]:
    """Load the newest checkpoint (model, its replay buffer when kept, its curve) for `--resume`.

    Returns `(model, step, zip path, curve)`; raises ValueError (one line, the file named) when there
    is no checkpoint or it cannot be read.
    """
    from agents.training.algorithms import load_algorithm  # algorithms imports this module's neighbours

    found = latest_checkpoint(checkpoint_dir)
    if found is None:
        raise ValueError(f"--resume: no checkpoint in {checkpoint_dir}")
    step, path = found
    try:
        model = load_algorithm(algorithm, path, env, training)
        replay = path.with_name(f"step_{step}_replay.pkl")
        if hasattr(model, "load_replay_buffer") and replay.exists():
            model.load_replay_buffer(str(replay))
        curve = load_curve(checkpoint_dir, step)
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot resume from this checkpoint ({exc})") from exc
    return model, step, path, curve
