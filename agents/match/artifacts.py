"""Listening and looking at a few matching episodes: A/B WAVs, spectrogram PNGs, trajectory PNGs.

Input: target vectors and the agent's final vectors `[E, 24]` (E a few episodes), parameter
trajectories `[steps, 24]` each, the renderer and hearing, an output folder. Output, per episode
`i`: `episode<i>_target.wav`, `episode<i>_result.wav` (the probe renders), `episode<i>_spectrogram.png`
(target / result log-mel side by side) and `episode<i>_trajectory.png` (the stage's parameters
over steps, targets dashed). Returns the written paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import soundfile as sf
import torch

from agents.match.probe import Hearing, Renderer
from synth.params import PARAM_NAMES, snap_vector


def write_episode_artifacts(
    out_dir: Path,
    targets_0to1: np.ndarray,
    results_0to1: np.ndarray,
    trajectories: Sequence[np.ndarray],
    active_0or1: np.ndarray,
    renderer: Renderer,
    hearing: Hearing,
    sample_rate_hz: int,
    x_label: str = "step",
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    n = len(targets_0to1)
    if n == 0:
        return written
    with torch.no_grad():
        audio = renderer(torch.from_numpy(snap_vector(np.concatenate([targets_0to1, results_0to1]))))
        logmel = hearing.hear(audio).logmel_db.numpy()
    audio_np = audio.numpy()
    active = np.flatnonzero(active_0or1)
    for i in range(n):
        for tag, row in (("target", i), ("result", n + i)):
            path = out_dir / f"episode{i}_{tag}.wav"
            sf.write(str(path), audio_np[row].astype(np.float32), sample_rate_hz, subtype="FLOAT")
            written.append(path)
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
        vmin = float(np.percentile(logmel[[i, n + i]], 5))
        vmax = float(logmel[[i, n + i]].max())
        for ax, row, title in ((axes[0], i, "target"), (axes[1], n + i, "result")):
            ax.imshow(logmel[row].T, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma")
            ax.set_title(f"{title} log-mel (dB)")
            ax.set_xlabel("frame")
        axes[0].set_ylabel("mel band")
        fig.tight_layout()
        path = out_dir / f"episode{i}_spectrogram.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
        if i < len(trajectories):
            path = out_dir / f"episode{i}_trajectory.png"
            written.append(_trajectory_png(path, trajectories[i], targets_0to1[i], active, x_label))
    return written


def _trajectory_png(path: Path, trajectory: np.ndarray, target: np.ndarray, active: np.ndarray, x_label: str) -> Path:
    fig, ax = plt.subplots(figsize=(8, 3.6))
    colours = plt.cm.tab20(np.linspace(0, 1, max(len(active), 1)))
    for colour, idx in zip(colours, active, strict=False):
        ax.plot(trajectory[:, idx], color=colour, label=PARAM_NAMES[idx])
        ax.axhline(float(target[idx]), color=colour, linestyle="--", linewidth=0.8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(x_label)
    ax.set_ylabel("normalized value")
    ax.set_title("parameter trajectory (dashed: target)")
    ax.legend(fontsize=6, ncol=2, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
