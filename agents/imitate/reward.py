"""Reward of the imitation environment (RL-impro's weighted similarity reward, plus smoothness).

Input: the agent's and the target's descriptor frames scaled to [0,1] (`DescriptorScale`), the
reward weights (one per descriptor: 0 for descriptors that are observed but not rewarded), and
the parameter change of this step.
Output: the reward (float) and the weighted RMSE it was computed from.

    rmse = sqrt( sum_k w_k (agent_k - target_k)^2 / sum_k w_k )
    cubic:  8 (0.5 - rmse)^3       (+1 at a perfect match, 0 at rmse 0.5, -1 at rmse 1)
    linear: 1 - rmse
    squared: 1 - 4 rmse^2         (+1 at a perfect match, 0 at rmse 0.5, -3 at rmse 1)
    prize:  +prize_value if rmse <= prize_threshold else -prize_value
    reward = shaped(rmse) - lambda_smooth * mean(|delta params|) / delta_max

`squared` is not RL-impro's: summed over an episode it is a constant minus 4 x the sum of the
per-tick mean squared errors, the quantity the evaluation's RMSE is the root of, so the return
ranks behaviours as the evaluation does; `cubic` is steepest near a perfect match and flattens
towards rmse 0.5, so it pays most for polishing good ticks.
Silence: the spectral shape of a silent frame is undefined (each analyser reports a convention,
e.g. the centroid of an all-zero spectrum), so when both the agent and the target are silent
(loudness below `synth.gate_off_db`) only the loudness descriptors are compared
(`match_silence`); the environment and the evaluation apply the same rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

RewardKind = Literal["cubic", "linear", "prize", "squared"]
REWARD_KINDS: tuple[str, ...] = ("cubic", "linear", "prize", "squared")


LOUDNESS_NAMES = ("loudness_db", "rms_db", "peak_db")


def match_silence(
    agent_0to1: np.ndarray, target_0to1: np.ndarray, names: Sequence[str], both_silent: np.ndarray | bool
) -> np.ndarray:
    """A copy of `agent_0to1` ([K] or [T, K]) whose non-loudness columns equal the target's where
    `both_silent` ([] or [T]) holds, so that silence matches silence whatever its spectral convention."""
    out = np.array(agent_0to1, dtype=np.float64, copy=True)
    cols = [i for i, n in enumerate(names) if n not in LOUDNESS_NAMES]
    if out.ndim == 1:
        if bool(both_silent):
            out[cols] = target_0to1[cols]
        return out
    rows = np.flatnonzero(np.asarray(both_silent, dtype=bool))
    out[np.ix_(rows, cols)] = np.asarray(target_0to1)[np.ix_(rows, cols)]
    return out


def reward_weights(
    descriptor_names: Sequence[str], rewarded: Sequence[str], weights: Mapping[str, float] | None = None
) -> np.ndarray:
    """Per-descriptor weights `[K]`: `weights[name]` (default 1) for rewarded names, 0 otherwise.

    Raises ValueError naming a rewarded descriptor that is not observed, or no positive weight.
    """
    weights = dict(weights or {})
    unknown = [n for n in list(rewarded) + list(weights) if n not in descriptor_names]
    if unknown:
        raise ValueError(
            f"reward descriptor(s) {', '.join(unknown)} not among the observed descriptors "
            f"({', '.join(descriptor_names)}): add them to imitate.features_keep"
        )
    out = np.zeros(len(descriptor_names), dtype=np.float64)
    for i, name in enumerate(descriptor_names):
        if name in rewarded:
            w = float(weights.get(name, 1.0))
            if w < 0 or not np.isfinite(w):
                raise ValueError(f"reward weight of '{name}' must be finite and >= 0, got {w}")
            out[i] = w
    if out.sum() <= 0:
        raise ValueError("reward weights: at least one rewarded descriptor needs a positive weight")
    return out


def weighted_rmse(agent_0to1: np.ndarray, target_0to1: np.ndarray, weights: np.ndarray) -> float:
    """Weighted RMSE between two scaled descriptor frames `[K]` (weights need not sum to 1)."""
    diff = np.asarray(agent_0to1, dtype=np.float64) - np.asarray(target_0to1, dtype=np.float64)
    return float(np.sqrt(np.sum(weights * diff * diff) / np.sum(weights)))


def shaped_reward(rmse: float, kind: str, prize_threshold: float = 0.1, prize_value: float = 10.0) -> float:
    """The RL-impro shaping of an RMSE (see the module docstring)."""
    if kind == "cubic":
        return float(8.0 * (0.5 - rmse) ** 3)
    if kind == "linear":
        return float(1.0 - rmse)
    if kind == "squared":
        return float(1.0 - 4.0 * rmse * rmse)
    if kind == "prize":
        return float(prize_value if rmse <= prize_threshold else -prize_value)
    raise ValueError(f"unknown reward kind '{kind}' (known: {', '.join(REWARD_KINDS)})")


def smoothness_penalty(delta_0to1: np.ndarray, delta_max: float) -> float:
    """Mean |parameter change| of one step as a fraction of the largest allowed change (0..1)."""
    if delta_0to1.size == 0:
        return 0.0
    return float(np.mean(np.abs(delta_0to1)) / max(delta_max, 1e-9))


class ImitationReward:
    """The configured reward: `__call__(agent_0to1, target_0to1, delta) -> (reward, rmse)`."""

    def __init__(
        self,
        weights: np.ndarray,
        kind: str,
        lambda_smooth: float,
        delta_max: float,
        prize_threshold: float = 0.1,
        prize_value: float = 10.0,
    ) -> None:
        if kind not in REWARD_KINDS:
            raise ValueError(f"unknown reward kind '{kind}' (known: {', '.join(REWARD_KINDS)})")
        if lambda_smooth < 0 or delta_max <= 0:
            raise ValueError(f"imitate.lambda_smooth must be >= 0 and delta_max > 0, got {lambda_smooth}, {delta_max}")
        self.weights = np.asarray(weights, dtype=np.float64)
        self.kind = kind
        self.lambda_smooth = float(lambda_smooth)
        self.delta_max = float(delta_max)
        self.prize_threshold = float(prize_threshold)
        self.prize_value = float(prize_value)

    def __call__(self, agent_0to1: np.ndarray, target_0to1: np.ndarray, delta_0to1: np.ndarray) -> tuple[float, float]:
        rmse = weighted_rmse(agent_0to1, target_0to1, self.weights)
        shaped = shaped_reward(rmse, self.kind, self.prize_threshold, self.prize_value)
        penalty = self.lambda_smooth * smoothness_penalty(np.asarray(delta_0to1), self.delta_max)
        return shaped - penalty, rmse
