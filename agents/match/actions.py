"""Action heads of the preset-matching environment.

Input: a batch of actions `[B, A]` in the flat Box [-1, 1]^A that SB3 algorithms emit.
Output: parameter deltas `[B, 24]` in normalized units, each within +-delta_max, plus the module
each row selected (selector mode).

Two modes (`match.action_mode`):
- `selector` (two-headed): A = 4 + 10. The first 4 entries are the logits of the module selector
  {osc, filter, env, lfo} (argmax picks the module); the next 10 entries are the continuous delta
  for that module's parameters, in the module's wire order (osc uses 10: the 9 osc parameters
  and master_volume; filter and lfo use the first 3, env the first 8; the rest are ignored).
- `flat`: A = 24, one delta per parameter in wire order ("delta on all parameters").
In both, the continuous part is clamped to [-1, 1] (SAC and TD3 already squash with tanh; PPO
samples are clipped) and scaled by delta_max.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from gymnasium import spaces

from synth.params import N_PARAMS, module_indices

SELECTOR_MODULES: tuple[str, ...] = ("osc", "filter", "env", "lfo")
# osc carries master_volume too (stage 1 is gains and mix)
MODULE_GROUPS: tuple[tuple[int, ...], ...] = (
    (*module_indices("osc"), *module_indices("master")),
    module_indices("filter"),
    module_indices("env"),
    module_indices("lfo"),
)
N_SELECTOR = len(SELECTOR_MODULES)
GROUP_WIDTH = max(len(g) for g in MODULE_GROUPS)

ActionMode = Literal["selector", "flat"]


class ActionCodec:
    """Turns flat Box actions into parameter deltas."""

    def __init__(self, mode: ActionMode, delta_max: float) -> None:
        if mode not in ("selector", "flat"):
            raise ValueError(f"match.action_mode must be 'selector' or 'flat', got {mode!r}")
        if not 0.0 < delta_max <= 1.0:
            raise ValueError(f"match.delta_max must be in (0, 1], got {delta_max}")
        self.mode: ActionMode = mode
        self.delta_max = float(delta_max)
        self.size = N_SELECTOR + GROUP_WIDTH if mode == "selector" else N_PARAMS
        # scatter table: row g -> the 24-index of each delta slot (N_PARAMS = "dropped")
        self._scatter = np.full((N_SELECTOR, GROUP_WIDTH), N_PARAMS, dtype=np.int64)
        for g, group in enumerate(MODULE_GROUPS):
            self._scatter[g, : len(group)] = group

    @property
    def space(self) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, shape=(self.size,), dtype=np.float32)

    def decode(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[B, A] actions -> (deltas [B, 24] float32, selected module [B] int; -1 in flat mode)."""
        a = np.asarray(actions, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != self.size:
            raise ValueError(f"expected actions of shape [B, {self.size}] ({self.mode} mode), got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError("actions contain NaN or Inf")
        a = np.clip(a, -1.0, 1.0)
        batch = a.shape[0]
        if self.mode == "flat":
            return a * self.delta_max, np.full(batch, -1, dtype=np.int64)
        selected = np.argmax(a[:, :N_SELECTOR], axis=1)
        deltas = np.zeros((batch, N_PARAMS + 1), dtype=np.float32)
        rows = np.repeat(np.arange(batch), GROUP_WIDTH)
        deltas[rows, self._scatter[selected].ravel()] = (a[:, N_SELECTOR:] * self.delta_max).ravel()
        return deltas[:, :N_PARAMS], selected

    def encode_deltas(self, deltas: np.ndarray, active_0or1: np.ndarray) -> np.ndarray:
        """Inverse for behaviour cloning: [B, 24] wanted deltas -> [B, A] actions.

        Flat mode is exact (up to clamping). Selector mode picks the module whose active parameters
        carry the largest squared delta and encodes that module's part.
        """
        d = np.clip(np.asarray(deltas, np.float32) / self.delta_max, -1.0, 1.0) * active_0or1
        if self.mode == "flat":
            return d.astype(np.float32)
        padded = np.concatenate([d, np.zeros((d.shape[0], 1), np.float32)], axis=1)
        energy = np.stack([(padded[:, self._scatter[g]] ** 2).sum(axis=1) for g in range(N_SELECTOR)], axis=1)
        selected = np.argmax(energy, axis=1)
        out = np.full((d.shape[0], self.size), -1.0, dtype=np.float32)
        out[np.arange(d.shape[0]), selected] = 1.0
        out[:, N_SELECTOR:] = padded[np.arange(d.shape[0])[:, None], self._scatter[selected]]
        return out
