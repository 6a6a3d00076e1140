"""`python -m agents.evaluate --task match`: an agent or a baseline on held-out target presets.

Input: `--agent random | cmaes | gradient | <model dir>`, `--budget N` (steps for a model, renders
for random search and CMA-ES, Adam steps for gradient descent), `--presets N` (the seeded held-out
set of `agents.match.curriculum.held_out_presets`, which training never samples) or `--presets
DIR` (every preset JSON in DIR), `--stage S`. Output: metrics (printed, or one JSON object with
`--json`: task, agent, stage, presets, budget, median_loss, success_rate, median_steps_to_eps,
wall_s, plus epsilon and mean_loss) and, for the first `--keep` episodes, A/B WAVs, spectrogram
PNGs and a parameter-trajectory PNG under `--out`.

`median_steps_to_eps` is the median over the episodes that reached epsilon (null when none did).
A model directory with a `refine` section in its model.yaml runs as the hybrid agent of
`agents.match.refine` (its policy, then gradient descent through the differentiable synth, within
the same step budget; the JSON then carries the `refine` settings); `--no-refine` runs the policy
alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from agents.match.curriculum import N_STAGES, active_mask, held_out_presets
from agents.match.probe import Hearing, Renderer
from settings.loader import Settings, with_overrides

if TYPE_CHECKING:
    from agents.match.refine import RefineConfig
    from agents.match.rollout import Policy

BASELINE_NAMES = ("random", "cmaes", "gradient")


class EvaluateError(ValueError):
    """Bad input to the match evaluation (one line, names the culprit)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", help="random | cmaes | gradient | a model directory (models/<name>)")
    parser.add_argument("--budget", type=int, help="steps (model, gradient) or renders (random, cmaes); default T")
    parser.add_argument("--presets", help="N held-out seeded presets, or a folder of preset JSON files")
    parser.add_argument("--stage", type=int, help=f"curriculum stage 1..{N_STAGES} (default: match.stage)")
    parser.add_argument("--out", type=Path, help="folder for WAVs and PNGs (default runs/evaluate/match_<agent>_s<S>)")
    parser.add_argument("--keep", type=int, default=3, help="episodes to write WAVs/PNGs for (default 3)")
    parser.add_argument("--no-refine", action="store_true", help="a model with a refine section: run its policy alone")
    parser.add_argument("--eval-seed", type=int, help="seed of the held-out set (default: match.eval_seed)")
    if "--json" not in parser._option_string_actions:
        parser.add_argument("--json", action="store_true", help="print one JSON object")


def load_targets(presets: str | None, settings: Settings) -> tuple[np.ndarray, str]:
    """`N` -> the seeded held-out set; a folder -> its preset files. Returns (targets, description)."""
    if presets is None:
        presets = str(settings.match.eval_presets)
    if presets.isdigit():
        count = int(presets)
        if count <= 0:
            raise EvaluateError(f"--presets: need at least one preset, got {count}")
        return held_out_presets(count, settings.match.eval_seed), f"held-out seed {settings.match.eval_seed}"
    folder = Path(presets)
    if not folder.is_dir():
        raise EvaluateError(f"--presets: '{presets}' is neither a number nor a folder")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise EvaluateError(f"--presets: no preset JSON files in {folder}")
    from synth.presets import load_preset

    return np.stack([load_preset(f).params_0to1 for f in files]).astype(np.float32), str(folder)


def evaluate(
    agent: str,
    targets_0to1: np.ndarray,
    settings: Settings,
    *,
    stage: int,
    budget: int,
    renderer: Renderer,
    hearing: Hearing,
    out_dir: Path | None,
    keep: int = 3,
    progress: bool = False,
    refine: bool = True,
) -> dict[str, Any]:
    """Run one agent on the targets; returns the metrics dict (and writes artifacts to `out_dir`).

    A model directory whose model.yaml has a `refine` section runs as the hybrid agent of
    `agents.match.refine` (the policy, then gradient refinement) unless `refine` is False."""
    if budget <= 0:
        raise EvaluateError(f"--budget must be > 0, got {budget}")
    if not 1 <= stage <= N_STAGES:
        raise EvaluateError(f"--stage must be 1..{N_STAGES}, got {stage}")
    epsilon = settings.match.epsilon
    start = time.perf_counter()
    refine_config: RefineConfig | None = None
    if agent in BASELINE_NAMES:
        from agents.baselines import BASELINES, MatchProblem

        problem = MatchProblem(targets_0to1, stage, renderer, hearing, epsilon)
        res = BASELINES[agent](problem, budget, seed=settings.match.seed, progress=progress)
        final_loss, steps, final_x, trajectories = res.best_loss, res.renders_to_eps, res.best_x, res.trajectories
        best_loss = res.best_loss
        x_label = "generation" if agent == "cmaes" else "round" if agent == "random" else "Adam step"
        trajectories = [np.stack([problem.starts[i], *t]) for i, t in enumerate(trajectories[:keep])]
    else:
        from agents.match.refine import hybrid_rollout

        policy, refine_config = load_policy(agent, settings, stage)
        if not refine:
            refine_config = None
        res_r = hybrid_rollout(  # the policy alone when there is no refine config
            policy,
            targets_0to1,
            settings,
            stage,
            budget,
            refine_config,
            renderer=renderer,
            hearing=hearing,
            keep_trajectories=keep,
            seed=settings.match.seed,
            progress=progress,
        )
        final_loss, steps, best_loss = res_r.final_loss, res_r.steps_to_eps, res_r.best_loss
        final_x, trajectories = res_r.final_x, res_r.trajectories
        x_label = "step"
    wall_s = time.perf_counter() - start
    success = steps >= 0
    metrics: dict[str, Any] = {
        "task": "match",
        "agent": agent,
        "stage": stage,
        "presets": len(targets_0to1),
        "budget": budget,
        "median_loss": float(np.median(final_loss)),
        "success_rate": float(success.mean()),
        "median_steps_to_eps": float(np.median(steps[success])) if success.any() else None,
        "wall_s": round(wall_s, 3),
        "epsilon": epsilon,
        "mean_loss": float(np.mean(final_loss)),
        "median_best_loss": float(np.median(best_loss)),  # lowest loss seen in the episode / search
    }
    if refine_config is not None:
        metrics["refine"] = refine_config.as_dict()
    if out_dir is not None and keep > 0:
        from agents.match.artifacts import write_episode_artifacts

        k = min(keep, len(targets_0to1))
        paths = write_episode_artifacts(
            out_dir,
            targets_0to1[:k],
            final_x[:k],
            trajectories[:k],
            active_mask(stage),
            renderer,
            hearing,
            settings.synth.sample_rate_hz,
            x_label,
        )
        metrics["artifacts"] = str(out_dir)
        metrics["artifact_files"] = len(paths)
    return metrics


def load_policy(model_dir: str, settings: Settings, stage: int) -> tuple[Policy, RefineConfig | None]:
    """A model directory's pickle-free policy as a batch policy, and its `RefineConfig` (None: the
    policy alone); checks task, shapes and the refine section."""
    from agents.match.refine import RefineError, refine_config
    from agents.match.rollout import batch_policy
    from agents.policy import ModelError, load_model

    path = Path(model_dir)
    if not path.is_dir():
        raise EvaluateError(f"--agent: '{model_dir}' is not random, cmaes, gradient or a model directory")
    try:
        model = load_model(path)
    except ModelError as exc:
        raise EvaluateError(str(exc)) from exc
    if model.meta.get("task") != "match":
        raise EvaluateError(f"{path}: model task is '{model.meta.get('task')}', not 'match'")
    action = model.meta.get("action", {})
    if action.get("kind") and action.get("kind") != settings.match.action_mode:
        raise EvaluateError(
            f"{path}: model action mode '{action.get('kind')}' != match.action_mode '{settings.match.action_mode}'"
        )
    try:
        config = refine_config(model.meta.get("refine"), path / "model.yaml")
    except RefineError as exc:
        raise EvaluateError(str(exc)) from exc
    return batch_policy(model.policy.act), config


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not args.agent:
        print("error: --agent is required (random, cmaes, gradient or a model directory)", file=sys.stderr)
        return 2
    try:
        if args.eval_seed is not None:
            settings = with_overrides(settings, {"match.eval_seed": args.eval_seed})
        model_meta = _model_match_settings(args.agent)
        if model_meta:
            settings = with_overrides(settings, model_meta)
        torch.set_num_threads(max(1, settings.training.threads))  # the machine is shared
        stage = settings.match.stage if args.stage is None else args.stage
        budget = settings.match.max_steps if args.budget is None else args.budget
        targets, source = load_targets(args.presets, settings)
        from agents.match.hearing import FeaturesHearing
        from agents.match.probe import ProbeRenderer

        out = args.out or Path("runs") / "evaluate" / f"match_{Path(args.agent).name}_s{stage}"
        metrics = evaluate(
            args.agent,
            targets,
            settings,
            stage=stage,
            budget=budget,
            renderer=ProbeRenderer(settings),
            hearing=FeaturesHearing(settings),
            out_dir=out,
            keep=args.keep,
            progress=True,
            refine=not args.no_refine,
        )
    except (EvaluateError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    metrics["presets_source"] = source
    if args.json:
        print(json.dumps(metrics))
    else:
        for key, value in metrics.items():
            print(f"{key}: {value}")
    return 0


def _model_match_settings(agent: str) -> dict[str, Any]:
    """A model's own action mode and observation options (from its settings snapshot)."""
    if agent in BASELINE_NAMES or not Path(agent).is_dir():
        return {}
    from agents.policy import ModelError, read_model_yaml

    try:
        meta = read_model_yaml(agent)
    except ModelError as exc:
        raise EvaluateError(str(exc)) from exc
    snap = meta.get("settings", {}).get("match", {}) if isinstance(meta.get("settings"), dict) else {}
    keys = ("action_mode", "delta_max", "observe_best_diff", "max_steps")
    return {f"match.{k}": snap[k] for k in keys if k in snap}
