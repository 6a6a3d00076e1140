"""The observation of the preset-matching environment: its layout and how it is filled.

Input: `Heard` features of the current and target renders (and of the best render so far), the
internal parameter vector, the stage mask and the step count. Output: one flat float32 vector per
environment, in this order (F frames x M mel bands, time-major; F and M come from the features
settings, 16 x 64 at 16 kHz with a 512 hop on a 0.5 s probe):

| slice | size | content | scale |
| --- | --- | --- | --- |
| current_logmel | F*M | log-mel of the current render | (dB + 40) / 40 |
| target_logmel | F*M | log-mel of the target (cached per episode) | (dB + 40) / 40 |
| deltas | 3 | MFCC L1 / 20, centroid difference (octaves), loudness difference / 20 dB | current - target |
| params | 24 | the agent's normalized parameter vector (before snapping), wire order | 0..1 |
| active | 24 | 1 where the stage lets the agent move the parameter | 0/1 |
| time | 1 | step / T | 0..1 |
| best_diff (optional, `match.observe_best_diff`) | F*M | current minus best-so-far log-mel | dB / 40 |

Every entry is clipped to [-OBS_LIMIT, OBS_LIMIT]. The CNN observer reshapes the first 2*F*M
entries into a (current, target) image pair [2, F, M].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces

from agents.match.probe import Heard
from synth.params import N_PARAMS

LOGMEL_REF_DB = -40.0
LOGMEL_SCALE_DB = 40.0
MFCC_SCALE = 20.0
LOUDNESS_SCALE_DB = 20.0
OBS_LIMIT = 10.0
N_DELTAS = 3
EPS_HZ = 1.0


@dataclass(frozen=True)
class ObservationLayout:
    n_frames: int
    n_mels: int
    best_diff: bool = False

    @property
    def image_size(self) -> int:
        return self.n_frames * self.n_mels

    @property
    def slices(self) -> dict[str, slice]:
        sizes = [
            ("current_logmel", self.image_size),
            ("target_logmel", self.image_size),
            ("deltas", N_DELTAS),
            ("params", N_PARAMS),
            ("active", N_PARAMS),
            ("time", 1),
        ]
        if self.best_diff:
            sizes.append(("best_diff", self.image_size))
        out, start = {}, 0
        for name, size in sizes:
            out[name] = slice(start, start + size)
            start += size
        return out

    @property
    def size(self) -> int:
        return max(s.stop for s in self.slices.values())

    @property
    def space(self) -> spaces.Box:
        return spaces.Box(-OBS_LIMIT, OBS_LIMIT, shape=(self.size,), dtype=np.float32)

    def describe(self) -> dict[str, object]:
        """Plain data for model.yaml and docs."""
        return {
            "size": self.size,
            "n_frames": self.n_frames,
            "n_mels": self.n_mels,
            "slices": {k: [v.start, v.stop] for k, v in self.slices.items()},
        }


def logmel_image(heard: Heard) -> np.ndarray:
    """[B, F, M] normalized log-mel."""
    return ((heard.logmel_db.detach().float() - LOGMEL_REF_DB) / LOGMEL_SCALE_DB).cpu().numpy()


def delta_features(current: Heard, target: Heard) -> np.ndarray:
    """[B, 3]: MFCC L1 (mean over frames and coefficients), centroid octaves, loudness dB, scaled."""
    mfcc_l1 = (current.mfcc - target.mfcc).abs().mean(dim=(1, 2)) / MFCC_SCALE
    cent = torch.log2((current.centroid_hz + EPS_HZ) / (target.centroid_hz + EPS_HZ)).mean(dim=1)
    loud = (current.loudness_db - target.loudness_db) / LOUDNESS_SCALE_DB
    return torch.stack([mfcc_l1, cent, loud], dim=1).detach().float().cpu().numpy()


def assemble(
    layout: ObservationLayout,
    current_img: np.ndarray,
    target_img: np.ndarray,
    deltas: np.ndarray,
    params_0to1: np.ndarray,
    active: np.ndarray,
    time_0to1: np.ndarray,
    best_img: np.ndarray | None = None,
) -> np.ndarray:
    """Concatenate the parts (all batch-first) into [B, layout.size] float32, clipped."""
    batch = current_img.shape[0]
    parts = [
        current_img.reshape(batch, -1),
        target_img.reshape(batch, -1),
        deltas,
        params_0to1,
        active,
        time_0to1.reshape(batch, 1),
    ]
    if layout.best_diff:
        if best_img is None:
            raise ValueError("layout has best_diff but no best-so-far image was given")
        parts.append((current_img - best_img).reshape(batch, -1))
    obs = np.concatenate([np.asarray(p, dtype=np.float32) for p in parts], axis=1)
    np.nan_to_num(obs, copy=False, nan=0.0, posinf=OBS_LIMIT, neginf=-OBS_LIMIT)
    return np.clip(obs, -OBS_LIMIT, OBS_LIMIT, out=obs)
