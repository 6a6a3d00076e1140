"""`python train.py --task match`: train the preset-matching agent and write its model directory.

Input: settings (`match.*`, `training.*`; `train.py` flags already applied, plus the match flags
added here by `add_arguments`) and the parsed arguments `out`, `resume`, `progress`.
Output: `models/<name>/` (default `models/match_<algorithm>`): `policy.safetensors` + `model.yaml`
(MLP observer; through `agents.training.export`), `checkpoints/` (+ `match_state.json`: the
curriculum stage) for `--resume`, `tensorboard/` (SB3 scalars plus `match/stage`,
`match/val_median_loss`, `match/val_success_rate`), `report/curve.png` + `report/eval.json`.

Training runs on `PresetMatchVecEnv` (N = `match.n_envs` environments, one batched render per
step). Every `training.eval_every` steps the deterministic policy is rolled out on the validation
presets; with `match.curriculum` the stage advances when their median loss falls under the stage's
threshold. With `match.bc_episodes` > 0 the actor is first cloned from CMA-ES trajectories.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecMonitor

from agents.match.curriculum import Curriculum, validation_presets
from agents.match.engine import MatchEngine
from agents.match.observer import policy_kwargs
from agents.match.rollout import rollout
from agents.match.vector import PresetMatchVecEnv
from agents.training.algorithms import make_algorithm
from agents.training.callbacks import LearningCurve, TrainingCallback, resume_latest, save_checkpoint
from agents.training.export import export_model
from agents.training.report import settings_snapshot, write_report
from settings.loader import Settings, SettingsError, with_overrides
from synth.params import PARAM_NAMES, default_vector

MATCH_ALGORITHMS = ("sac", "ppo", "td3")
STATE_FILE = "match_state.json"


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--stage", type=int, default=None, help="starting curriculum stage 1..5 (match.stage)")
    group.add_argument("--action-mode", choices=("selector", "flat"), default=None, help="match.action_mode")
    group.add_argument("--n-envs", type=int, default=None, help="vectorized environments (match.n_envs)")
    group.add_argument("--observer", choices=("mlp", "cnn"), default=None, help="match.observer")
    group.add_argument("--bc-episodes", type=int, default=None, help="CMA-ES demonstrations for BC (0: off)")
    group.add_argument("--bc-budget", type=int, default=None, help="CMA-ES renders per demonstration")
    group.add_argument("--no-curriculum", dest="curriculum", action="store_false", default=None, help="stay at --stage")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = {
        "stage": "match.stage",
        "action_mode": "match.action_mode",
        "n_envs": "match.n_envs",
        "observer": "match.observer",
        "bc_episodes": "match.bc_episodes",
        "bc_budget": "match.bc_budget",
        "curriculum": "match.curriculum",
    }
    return {dotted: getattr(args, name, None) for name, dotted in keys.items()}


def make_model(settings: Settings, venv: PresetMatchVecEnv | VecMonitor, tensorboard: Path | None) -> BaseAlgorithm:
    """SAC / PPO / TD3 with the shared hyper-parameters and the chosen observer."""
    tr = settings.training
    layout = venv.get_attr("engine")[0].layout
    return make_algorithm(
        tr.algorithm,
        venv,
        tr,
        tensorboard_log=tensorboard,
        seed=tr.seed,
        policy_kwargs=policy_kwargs(settings.match.observer, layout, tr.net_arch),
    )


class CurriculumCallback(BaseCallback):
    """Validation rollouts every `eval_every` steps; advances the curriculum; logs the stage."""

    def __init__(
        self, settings: Settings, venv: PresetMatchVecEnv, curriculum: Curriculum, curve: LearningCurve, state: Path
    ) -> None:
        super().__init__()
        self.settings = settings
        self.venv = venv
        self.curriculum = curriculum
        self.curve = curve
        self.state = state
        self.targets = validation_presets(settings.match.validation_presets, settings.match.seed)
        self.every = settings.training.eval_every
        self.last = 0
        self.history: list[dict[str, float]] = []

    def _on_step(self) -> bool:
        if self.every > 0 and self.num_timesteps - self.last >= self.every:
            self.last = self.num_timesteps
            self.validate()
        return True

    def validate(self, advance: bool = True) -> dict[str, float]:
        engine = self.venv.engine
        result = rollout(
            lambda obs: self.model.predict(obs, deterministic=True)[0],
            self.targets,
            self.settings,
            self.curriculum.stage,
            self.settings.match.max_steps,
            renderer=engine.renderer,
            hearing=engine.hearing,
            keep_trajectories=0,
        )
        median = float(np.median(result.final_loss))
        entry = {
            "step": self.num_timesteps,
            "stage": self.curriculum.stage,
            "median_loss": median,
            "success_rate": float(result.success.mean()),
        }
        self.history.append(entry)
        self.curve.evaluations.append({"step": self.num_timesteps, "mean_return": float("nan"), "mean_rmse": median})
        self.logger.record("match/stage", self.curriculum.stage)
        self.logger.record("match/val_median_loss", median)
        self.logger.record("match/val_success_rate", entry["success_rate"])
        if advance and self.settings.match.curriculum and self.curriculum.update(median):
            self.venv.set_stage(self.curriculum.stage)
            print(f"curriculum: stage {self.curriculum.stage} at step {self.num_timesteps}", file=sys.stderr)
        self.state.parent.mkdir(parents=True, exist_ok=True)
        self.state.write_text(json.dumps({"stage": self.curriculum.stage, "history": self.history}), encoding="utf-8")
        return entry


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        settings = with_overrides(settings, _overrides(args))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tr, ms = settings.training, settings.match
    if tr.algorithm not in MATCH_ALGORITHMS:
        print(f"error: --task match trains {', '.join(MATCH_ALGORITHMS)}, not '{tr.algorithm}'", file=sys.stderr)
        return 2
    if ms.n_envs <= 0 or ms.bc_episodes < 0:
        print(f"error: match.n_envs must be > 0, bc_episodes >= 0; got {ms.n_envs}, {ms.bc_episodes}", file=sys.stderr)
        return 2
    out = Path(args.out) if getattr(args, "out", None) else Path("models") / f"match_{tr.algorithm}"
    torch.set_num_threads(max(1, tr.threads))
    set_random_seed(tr.seed)
    checkpoint_dir, state_path = out / "checkpoints", out / "checkpoints" / STATE_FILE
    try:
        vec = PresetMatchVecEnv(ms.n_envs, settings)
    except (ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    venv = VecMonitor(vec)
    vec.seed(tr.seed)
    curve, stage = LearningCurve(), ms.stage
    if getattr(args, "resume", False):
        try:
            model, step, path, curve = resume_latest(checkpoint_dir, tr.algorithm, venv, tr)
            if state_path.exists():
                stage = int(json.loads(state_path.read_text(encoding="utf-8"))["stage"])
        except (ValueError, OSError, KeyError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        model.tensorboard_log = str(out / "tensorboard")
        print(f"resuming from {path} at step {step}, stage {stage}", file=sys.stderr)
    else:
        model = make_model(settings, venv, out / "tensorboard")
    vec.set_stage(stage)
    curriculum = Curriculum(stage=stage, thresholds=ms.curriculum_thresholds)
    bc_info: dict[str, float] = {}
    if ms.bc_episodes > 0 and not getattr(args, "resume", False):
        from agents.match.bc import behaviour_clone, cmaes_demonstrations

        obs, actions, cma_loss = cmaes_demonstrations(
            settings, vec.engine.renderer, vec.engine.hearing, ms.bc_episodes, ms.bc_budget, stage
        )
        bc_info = {
            "bc_pairs": len(obs),
            "bc_cmaes_median_loss": cma_loss,
            "bc_mse": behaviour_clone(model, obs, actions, ms.bc_epochs, seed=tr.seed),
        }
        print(f"behaviour cloning: {len(obs)} pairs, mse {bc_info['bc_mse']:.4f}", file=sys.stderr)
    progress = getattr(args, "progress", True)
    train_cb = TrainingCallback(
        total_steps=tr.total_steps,
        curve=curve,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=tr.checkpoint_every,
        eval_env=None,
        eval_every=0,
        eval_episodes=0,
        eval_seed=0,
        progress=progress,
    )
    cur_cb = CurriculumCallback(settings, vec, curriculum, curve, state_path)
    remaining = tr.total_steps - int(model.num_timesteps)
    started = time.perf_counter()
    if remaining > 0:
        model.learn(
            total_timesteps=remaining,
            callback=CallbackList([train_cb, cur_cb]),
            reset_num_timesteps=not getattr(args, "resume", False),
            tb_log_name="match",
        )
    wall_s = time.perf_counter() - started
    save_checkpoint(model, checkpoint_dir, curve)
    final = cur_cb.validate(advance=False)
    metrics = {**final, "train_wall_s": round(wall_s, 1), **bc_info}
    if ms.observer == "mlp":
        export_model(model, out, model_meta(vec.engine, settings, int(model.num_timesteps), metrics, curriculum.stage))
    else:
        print("note: CNN observer policies stay as SB3 checkpoints (no numpy export)", file=sys.stderr)
    write_report(out / "report", curve, metrics, title=f"match / {tr.algorithm} (RMSE panel: validation loss)")
    print(
        f"wrote {out} ({int(model.num_timesteps)} steps, stage {curriculum.stage}, "
        f"validation median loss {final['median_loss']:.3f}, success {final['success_rate']:.2f})"
    )
    return 0


def model_meta(engine: MatchEngine, settings: Settings, steps: int, metrics: dict, stage: int) -> dict[str, Any]:
    """The task-specific keys of model.yaml (the policy/format keys are added by `write_model_dir`)."""
    return {
        "task": "match",
        "algorithm": settings.training.algorithm,
        "controlled_params": list(PARAM_NAMES),
        "descriptor_names": ["logmel", "mfcc_l1", "centroid_octaves", "loudness_diff_db"],
        "normalization": {},
        "observation": engine.layout.describe(),
        "action": {"kind": settings.match.action_mode, "delta_max": settings.match.delta_max},
        "start_preset": [float(v) for v in default_vector()],
        "stage": stage,
        "settings": {
            k: settings_snapshot(getattr(settings, k)) for k in ("match", "training", "synth", "features", "loss")
        },
        "training_steps": steps,
        "metrics": metrics,
    }
