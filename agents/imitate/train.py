"""Train the listening agent on an analysed corpus and write its model directory.

Input: settings (`imitate.*`, `training.*`, `synth.*`, `features.*`; CLI flags already applied by
`train.py`) and the parsed arguments `corpus`, `out`, `resume`, `progress`.
Output: `models/<name>/` per SPEC: `policy.safetensors` + `model.yaml` (through
`agents.training.export`), `checkpoints/` (every `training.checkpoint_every` steps, for
`--resume`), `tensorboard/`, `report/curve.png` + `report/eval.json`. Returns an exit code.
The model's start preset (where evaluation and the live server begin) is the table's defaults with
the controlled parameters of the best static sound for the corpus (`baselines.corpus_start_preset`).

Training is deterministic for a seed (one torch thread, seeded SB3, envs seeded through
`reset(seed=...)`); a resumed run continues from the newest complete checkpoint.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv

from agents.imitate.baselines import corpus_start_preset
from agents.imitate.env import ImitateEnv, make_env
from agents.imitate.sound import SoundDescriber, make_describer
from agents.imitate.targets import TargetCorpus, corpus_scale, load_corpus
from agents.training.algorithms import make_algorithm, wrap_for_algorithm
from agents.training.callbacks import (
    LearningCurve,
    TrainingCallback,
    evaluate_episodes,
    resume_latest,
    save_checkpoint,
)
from agents.training.export import export_model
from agents.training.report import settings_snapshot, write_report
from features.names import expand
from settings import Settings, with_overrides
from synth.params import PARAM_NAMES

EVAL_SEED_OFFSET = 10_000


def default_out(settings: Settings, corpus: Path) -> Path:
    return Path("models") / f"{corpus.name}_{settings.training.algorithm}"


def model_meta(
    env: ImitateEnv, settings: Settings, corpus: TargetCorpus, steps: int, metrics: dict, start_preset: np.ndarray
) -> dict[str, Any]:
    """The task-specific keys of model.yaml (the policy/format keys are added by `write_model_dir`)."""
    im = settings.imitate
    return {
        "task": "imitate",
        "algorithm": settings.training.algorithm,
        "controlled_params": [PARAM_NAMES[i] for i in env.controlled],  # the env's (wire) order
        "descriptor_names": list(env.descriptor_names),
        "reward_descriptors": list(env.reward_names),
        "normalization": env.scale.to_dict(),
        "observation": env.builder.layout(),
        "action": {"kind": im.action, "delta_max": im.delta_max},
        "start_preset": [float(v) for v in start_preset],
        "tick_s": corpus.tick_s,
        # the `stream` source plays the live server's output smoothing (`SynthLoop`); the others none
        "output_smoothing_s": settings.server.smoothing_s if im.descriptor_source == "stream" else 0.0,
        "corpus": str(corpus.path),
        "settings": {k: settings_snapshot(getattr(settings, k)) for k in ("imitate", "training", "synth", "features")},
        "training_steps": int(steps),
        "metrics": metrics,
    }


def _make(settings: Settings, corpus: TargetCorpus, describer: SoundDescriber, mode: str | None = None) -> gym.Env:
    if mode is not None:
        settings = with_overrides(settings, {"imitate.mode": mode})
    scale = corpus_scale(corpus)
    env = make_env(settings, target_corpus=corpus, describer=describer, scale=scale)
    return wrap_for_algorithm(settings.training.algorithm, env)


def run(settings: Settings, args: argparse.Namespace) -> int:
    tr = settings.training
    corpus_dir = Path(args.corpus if args.corpus else settings.corpus.default)
    out = Path(args.out) if args.out else default_out(settings, corpus_dir)
    torch.set_num_threads(max(1, tr.threads))
    set_random_seed(tr.seed)
    try:
        corpus = load_corpus(corpus_dir, required=expand(settings.imitate.features_keep))
        describer = make_describer(
            settings.imitate.descriptor_source,
            settings.synth,
            settings.features,
            settings.imitate.window_s,
            settings.imitate.proxy_dir,
            settings,
        )
        train_env = DummyVecEnv([lambda: Monitor(_make(settings, corpus, describer))])
        eval_env = _make(settings, corpus, describer, mode="corpus")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    checkpoint_dir = out / "checkpoints"
    curve = LearningCurve()
    if args.resume:
        try:
            model, step, path, curve = resume_latest(checkpoint_dir, tr.algorithm, train_env, tr)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        model.tensorboard_log = str(out / "tensorboard")
        print(f"resuming from {path} at step {step}", file=sys.stderr)
    else:
        model = make_algorithm(tr.algorithm, train_env, tr, tensorboard_log=out / "tensorboard", seed=tr.seed)
    callback = TrainingCallback(
        total_steps=tr.total_steps,
        curve=curve,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=tr.checkpoint_every,
        eval_env=eval_env,
        eval_every=tr.eval_every,
        eval_episodes=tr.eval_episodes,
        eval_seed=tr.seed + EVAL_SEED_OFFSET,
        progress=args.progress,
        max_wall_s=tr.max_wall_s,
    )
    remaining = tr.total_steps - int(model.num_timesteps)
    started = time.perf_counter()
    if remaining > 0:
        model.learn(
            total_timesteps=remaining,
            callback=callback,
            reset_num_timesteps=not args.resume,
            tb_log_name="imitate",
        )
    wall_s = time.perf_counter() - started
    save_checkpoint(model, checkpoint_dir, curve)
    final = evaluate_episodes(model, eval_env, tr.eval_episodes, tr.seed + EVAL_SEED_OFFSET)
    metrics = {
        **final,
        "train_wall_s": round(wall_s, 1),
        "eval_episodes": tr.eval_episodes,
        "stopped_by_time_limit": callback.stopped_by_time,
    }
    base_env: Any = eval_env.unwrapped
    start = corpus_start_preset(
        describer,
        corpus.tracks,
        base_env.scale.subset(base_env.reward_names),
        base_env.controlled,
        settings.synth,
        corpus.tick_s,
        seed=tr.seed,
    )
    meta = model_meta(base_env, settings, corpus, int(model.num_timesteps), metrics, start)
    export_model(model, out, meta)
    paths = write_report(out / "report", curve, metrics, title=f"imitate / {tr.algorithm} / {corpus_dir.name}")
    print(
        f"wrote {out} ({int(model.num_timesteps)} steps, eval rmse {final['mean_rmse']:.3f}, "
        f"return {final['mean_return']:.2f}; report {paths['curve_png']})"
    )
    return 0
