"""The observation builder shared by training, evaluation and the live server.

Input: one frame of the agent's own descriptors `[K]`, one frame of the target's (the musician's)
descriptors `[K]` (both in physical units, `features.names` order restricted to the model's
descriptor names) and the controlled parameters `[P]` in [0,1].
Output: one float32 observation vector, the same in every stage:

    block = [ agent descriptors (K) | target descriptors (K) | controlled parameters (P) ]
    observation = [ block(t) | block(t-1) | ... | block(t-history) ]      size (2K+P)(1+history)

Descriptors are scaled by `DescriptorScale` (robust min/max -> [0,1]) and then mapped to
[-1, 1] (`2 x - 1`); parameters likewise (`2 p - 1`). Everything is clipped to
[-OBS_CLIP, OBS_CLIP] so an out-of-range sound never produces an unbounded input.

`ObservationBuilder.build` writes into a preallocated buffer and returns it (no allocation per
call): callers that keep the vector must copy it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

OBS_CLIP = 3.0


@dataclass(frozen=True)
class DescriptorScale:
    """Per-descriptor affine scaling to [0,1]: `x_0to1 = (x - low) / (high - low)`."""

    names: tuple[str, ...]
    low: np.ndarray  # [K] float64, physical units
    high: np.ndarray  # [K] float64

    def __post_init__(self) -> None:
        k = len(self.names)
        if self.low.shape != (k,) or self.high.shape != (k,):
            raise ValueError(f"scale: expected low/high of shape ({k},), got {self.low.shape}, {self.high.shape}")
        if not np.all(np.isfinite(self.low)) or not np.all(np.isfinite(self.high)):
            raise ValueError("scale: low/high must be finite")

    @property
    def span(self) -> np.ndarray:
        return np.maximum(self.high - self.low, 1e-9)

    def to_0to1(self, x: np.ndarray) -> np.ndarray:
        """Physical `[..., K]` -> scaled `[..., K]` (float64, not clipped)."""
        return (np.asarray(x, dtype=np.float64) - self.low) / self.span

    def subset(self, names: Sequence[str]) -> DescriptorScale:
        """The scale restricted to `names` (which must all be known)."""
        idx = [self.index(n) for n in names]
        return DescriptorScale(tuple(names), self.low[idx].copy(), self.high[idx].copy())

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"descriptor '{name}' not in the normalization ({', '.join(self.names)})") from None

    def to_dict(self) -> dict[str, dict[str, float]]:
        """Plain data for model.yaml: `{name: {"low": ..., "high": ...}}`."""
        pairs = zip(self.names, self.low, self.high, strict=True)
        return {n: {"low": float(lo), "high": float(hi)} for n, lo, hi in pairs}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, float]], names: Sequence[str] | None = None) -> DescriptorScale:
        """Inverse of `to_dict`; `names` picks (and orders) a subset. Errors name the missing key."""
        names = tuple(names) if names is not None else tuple(data)
        low, high = [], []
        for n in names:
            entry = data.get(n)
            if not isinstance(entry, Mapping) or "low" not in entry or "high" not in entry:
                raise ValueError(f"normalization: missing low/high for descriptor '{n}'")
            low.append(float(entry["low"]))
            high.append(float(entry["high"]))
        return cls(names, np.array(low, dtype=np.float64), np.array(high, dtype=np.float64))


class ObservationBuilder:
    """Builds the observation vector documented in the module docstring."""

    def __init__(self, scale: DescriptorScale, n_controlled: int, history: int = 0) -> None:
        if history < 0:
            raise ValueError(f"history must be >= 0, got {history}")
        self.scale = scale
        self.n_descriptors = len(scale.names)
        self.n_controlled = int(n_controlled)
        self.history = int(history)
        self.block_size = 2 * self.n_descriptors + self.n_controlled
        self.size = self.block_size * (1 + self.history)
        self._inv_span = (1.0 / scale.span).astype(np.float32)
        self._low = scale.low.astype(np.float32)
        self._out = np.zeros(self.size, dtype=np.float32)
        self._block = np.zeros(self.block_size, dtype=np.float32)
        self._filled = False

    def layout(self) -> dict[str, object]:
        """A description of the vector for model.yaml and the docs."""
        k, p = self.n_descriptors, self.n_controlled
        return {
            "size": self.size,
            "history": self.history,
            "block": [
                {"name": "agent_descriptors", "start": 0, "size": k},
                {"name": "target_descriptors", "start": k, "size": k},
                {"name": "controlled_params", "start": 2 * k, "size": p},
            ],
            "scaling": f"descriptors: 2*(x-low)/(high-low)-1; params: 2*p-1; clipped to +-{OBS_CLIP:g}",
        }

    def reset(self) -> None:
        """Forget the history: the next `build` fills every history slot with its block."""
        self._filled = False

    def build(self, agent: np.ndarray, target: np.ndarray, params_0to1: np.ndarray) -> np.ndarray:
        """One observation (the internal buffer, overwritten by the next call)."""
        k = self.n_descriptors
        block = self._block
        np.subtract(agent, self._low, out=block[:k], casting="unsafe")
        np.subtract(target, self._low, out=block[k : 2 * k], casting="unsafe")
        block[: 2 * k].reshape(2, k).__imul__(self._inv_span)
        block[2 * k :] = params_0to1
        block *= 2.0
        block -= 1.0
        np.clip(block, -OBS_CLIP, OBS_CLIP, out=block)
        np.nan_to_num(block, copy=False, nan=0.0)
        out = self._out
        if self.history:
            if self._filled:
                out[self.block_size :] = out[: -self.block_size]  # numpy handles the overlap
            else:
                out[self.block_size :] = np.tile(block, self.history)
        out[: self.block_size] = block
        self._filled = True
        return out
