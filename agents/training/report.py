"""The training report of a model directory: learning-curve PNG and evaluation JSON.

Input: a `LearningCurve` (episode returns, periodic evaluations) and the final metrics.
Output: `<model>/report/curve.png` (return and per-step RMSE against training steps) and
`<model>/report/eval.json`; also `settings_snapshot()` (settings -> plain data for model.yaml).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from agents.training.callbacks import LearningCurve


def settings_snapshot(obj: Any) -> Any:
    """Frozen settings dataclasses (with tuples and mapping proxies) -> plain YAML-safe data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: settings_snapshot(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): settings_snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [settings_snapshot(v) for v in obj]
    return obj


def write_report(report_dir: Path, curve: LearningCurve, metrics: Mapping[str, Any], title: str) -> dict[str, Path]:
    """Write curve.png and eval.json; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report_dir.mkdir(parents=True, exist_ok=True)
    fig, (ax_r, ax_e) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    if curve.episodes:
        steps = np.array([e["step"] for e in curve.episodes])
        returns = np.array([e["return"] for e in curve.episodes])
        ax_r.plot(steps, returns, ".", alpha=0.4, label="episode return")
        if len(returns) >= 5:
            k = max(1, len(returns) // 10)
            smooth = np.convolve(returns, np.ones(k) / k, mode="valid")
            ax_r.plot(steps[k - 1 :], smooth, "-", label=f"mean of {k}")
        rmse = np.array([e["rmse"] for e in curve.episodes])
        ax_e.plot(steps, rmse, ".", alpha=0.4, label="training episode RMSE")
    if curve.evaluations:
        steps_e = [e["step"] for e in curve.evaluations]
        ax_r.plot(steps_e, [e["mean_return"] for e in curve.evaluations], "o-", label="evaluation return")
        ax_e.plot(steps_e, [e["mean_rmse"] for e in curve.evaluations], "o-", label="evaluation RMSE")
    ax_r.set_ylabel("return")
    ax_e.set_ylabel("normalized descriptor RMSE")
    ax_e.set_xlabel("training steps")
    for ax in (ax_r, ax_e):
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    png = report_dir / "curve.png"
    fig.savefig(png, dpi=80)
    plt.close(fig)
    js = report_dir / "eval.json"
    js.write_text(json.dumps({"metrics": dict(metrics), **curve.to_json()}, indent=1), encoding="utf-8")
    return {"curve_png": png, "eval_json": js}
