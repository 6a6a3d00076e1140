"""Ensembles: K policies trained side by side with seeds seed..seed+K-1, merged into one network.

Input: K member model directories written by the same trainer with the same settings (only the
seed differs); `train.py --members K` trains them as K processes at once, one per core
(`agents.training.members`). Output: one ordinary model directory whose policy is the members'
average, so that the live server, the evaluation and `agents.policy` run it unchanged:

- the members' first layers are stacked, their hidden layers placed on a block diagonal (member k
  only ever sees its own hidden units), and their output layers concatenated along the input and
  divided by K: the merged network's last pre-activation is the mean of the members' (`tanh` then
  squashes the mean, `clip` clips it, `updown` takes the argmax of the mean scores);
- `model.yaml` is member 0's (observation layout, normalization, start preset, settings) with
  `ensemble` (members, seeds, steps, directories), the summed `training_steps` and the members'
  metrics; the merge refuses members whose observation, actions or settings differ (one line, the
  member's file and the key named).

Why: independently trained SAC policies make errors that partly cancel. Measured on the demo corpus
(docs/benchmarks.md), a pair's average follows the held-out recordings closer than either member, and
5-8% closer than the mean of the two; averaging before the squashing and after it score the same
(0.0974 / 0.0969).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.linalg import block_diag

from agents.policy import LoadedModel, ModelError, load_model, write_model_dir

Layers = Sequence[tuple[np.ndarray, np.ndarray]]  # (weight [out, in], bias [out]) per layer
# model.yaml keys every member must share (the seed, steps, metrics and start preset may differ)
SHARED_KEYS = ("task", "algorithm", "controlled_params", "descriptor_names", "reward_descriptors",
               "normalization", "observation", "action", "tick_s", "output_smoothing_s")  # fmt: skip
SHARED_POLICY_KEYS = ("activation", "output")


def merge_layers(members: Sequence[Layers]) -> list[tuple[np.ndarray, np.ndarray]]:
    """One MLP computing the mean of the members' last pre-activations (shapes checked, ValueError)."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    n_layers = len(members[0])
    for k, layers in enumerate(members):
        if len(layers) != n_layers:
            raise ValueError(f"member {k} has {len(layers)} layers, member 0 has {n_layers}")
        if layers[0][0].shape[1] != members[0][0][0].shape[1] or layers[-1][0].shape[0] != members[0][-1][0].shape[0]:
            raise ValueError(
                f"member {k} maps {layers[0][0].shape[1]} -> {layers[-1][0].shape[0]} values, "
                f"member 0 {members[0][0][0].shape[1]} -> {members[0][-1][0].shape[0]}"
            )
    k_members = len(members)
    merged: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(n_layers):
        weights = [np.asarray(layers[i][0], dtype=np.float64) for layers in members]
        biases = [np.asarray(layers[i][1], dtype=np.float64) for layers in members]
        if i == n_layers - 1:  # the output layer: mean of the members' pre-activations
            w = np.concatenate(weights, axis=1) / k_members
            b = np.sum(biases, axis=0) / k_members
        elif i == 0:  # every member reads the same observation
            w = np.concatenate(weights, axis=0)
            b = np.concatenate(biases)
        else:
            w = block_diag(*weights)
            b = np.concatenate(biases)
        merged.append((w.astype(np.float32), b.astype(np.float32)))
    return merged


def check_members(models: Sequence[LoadedModel]) -> None:
    """Raise ModelError naming the first member whose model.yaml disagrees with member 0's."""
    first = models[0]
    for model in models[1:]:
        where = model.path / "model.yaml"
        for key in SHARED_KEYS:
            if first.meta.get(key) != model.meta.get(key):
                raise ModelError(f"{where}: '{key}' differs from {first.path / 'model.yaml'}'s")
        for key in SHARED_POLICY_KEYS:
            if first.meta["policy"].get(key) != model.meta["policy"].get(key):
                raise ModelError(f"{where}: 'policy.{key}' differs from {first.path / 'model.yaml'}'s")
        settings_a = _without_seed(first.meta.get("settings", {}))
        settings_b = _without_seed(model.meta.get("settings", {}))
        for section in sorted(set(settings_a) | set(settings_b)):
            if settings_a.get(section) != settings_b.get(section):
                raise ModelError(f"{where}: settings '{section}' differ from {first.path / 'model.yaml'}'s")


def _without_seed(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings snapshot with what may differ between members (seed, wall-time limit) removed."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in settings.items()}
    training = out.get("training")
    if isinstance(training, dict):
        for key in ("seed", "max_wall_s"):
            training.pop(key, None)
    return out


def write_ensemble(out_dir: str | Path, member_dirs: Sequence[str | Path], *, wall_s: float) -> Path:
    """Merge the member model directories into `out_dir` (model.yaml, policy.safetensors, report/).

    `wall_s` is the wall time of the side-by-side training (the members ran at once)."""
    out_dir = Path(out_dir)
    models = [load_model(d) for d in member_dirs]
    check_members(models)
    merged = merge_layers([m.policy.weights() for m in models])
    first = models[0]
    meta = {k: v for k, v in first.meta.items() if k not in ("format_version", "param_table_version",
                                                              "param_order", "policy")}  # fmt: skip
    member_metrics = [dict(m.meta.get("metrics", {})) for m in models]
    steps = [int(m.meta.get("training_steps", 0)) for m in models]
    meta["ensemble"] = {
        "members": len(models),
        "seeds": [_seed(m) for m in models],
        "training_steps": steps,
        "dirs": [_relative(m.path, out_dir) for m in models],
        "merge": "mean of the members' last pre-activations (block-diagonal hidden layers)",
    }
    meta["training_steps"] = int(sum(steps))
    meta["metrics"] = {
        "train_wall_s": round(float(wall_s), 1),
        "train_cpu_s": round(sum(float(m.get("train_wall_s", 0.0)) for m in member_metrics), 1),
        "members_mean_rmse": float(np.mean([m.get("mean_rmse", np.nan) for m in member_metrics])),
        "members": member_metrics,
    }
    write_model_dir(out_dir, meta, merged, activation=first.policy.activation, output=first.policy.output)
    write_member_report(out_dir / "report", models, meta["metrics"])
    return out_dir


def _seed(model: LoadedModel) -> int | None:
    seed = model.meta.get("settings", {}).get("training", {}).get("seed")
    return int(seed) if isinstance(seed, int) else None


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def write_member_report(report_dir: Path, models: Sequence[LoadedModel], metrics: Mapping[str, Any]) -> None:
    """`curve.png` (every member's evaluation RMSE over its training) and `eval.json` (metrics + curves)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report_dir.mkdir(parents=True, exist_ok=True)
    curves = []
    for model in models:
        path = model.path / "report" / "eval.json"
        try:
            curves.append(json.loads(path.read_text(encoding="utf-8")).get("evaluations", []))
        except (OSError, ValueError):
            curves.append([])  # a member without its report still merges; its curve is left out
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for model, evaluations in zip(models, curves, strict=True):
        if evaluations:
            ax.plot([e["step"] for e in evaluations], [e["mean_rmse"] for e in evaluations], "o-", ms=3,
                    label=f"{model.path.name} (seed {_seed(model)})")  # fmt: skip
    ax.set_xlabel("training steps (each member)")
    ax.set_ylabel("evaluation RMSE")
    ax.grid(alpha=0.3)
    if ax.has_data():
        ax.legend(fontsize=8)
    fig.suptitle(f"ensemble of {len(models)}: members' learning curves")
    fig.tight_layout()
    fig.savefig(report_dir / "curve.png", dpi=80)
    plt.close(fig)
    payload = {"metrics": dict(metrics), "members": [str(m.path) for m in models], "evaluations": curves}
    (report_dir / "eval.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
