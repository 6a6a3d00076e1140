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
        k = self.n_descriptors
        inv_span = (1.0 / scale.span).astype(np.float32)
        self._low = scale.low.astype(np.float32)
        # the whole block in three steps: (x - block_low) * block_scale - 1, with params' low 0 and scale 2,
        # and descriptors' scale 2 / span (x * (2 s) == (x * s) * 2 exactly in binary floating point)
        self.block_low = np.concatenate([self._low, self._low, np.zeros(self.n_controlled, np.float32)])
        self.block_scale = np.concatenate([inv_span, inv_span, np.ones(self.n_controlled, np.float32)]) * np.float32(2)
        self._out = np.zeros(self.size, dtype=np.float32)
        self._block = self._out[: self.block_size]  # the newest block is written in place
        self._agent = self._block[:k]
        self._target = self._block[k : 2 * k]
        self._params = self._block[2 * k :]
        self._nan = np.zeros(self.block_size, dtype=bool)
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
        self._shift()
        np.subtract(agent, self._low, out=self._agent, casting="unsafe")  # in the inputs' precision
        np.subtract(target, self._low, out=self._target, casting="unsafe")
        self._params[:] = params_0to1
        block = self._block
        np.multiply(block, self.block_scale, out=block)
        return self._finish()

    def build_indexed(
        self,
        agent_all: np.ndarray,
        agent_index: np.ndarray,
        target: np.ndarray,
        target_index: np.ndarray | None,
        params_all: np.ndarray,
        params_index: np.ndarray,
    ) -> np.ndarray:
        """`build(agent_all[agent_index], target[target_index] (or target itself when None),
        params_all[params_index])` without the intermediate arrays (the live server's path).
        The picked values are rounded to float32 before scaling. The indices must be in range (the
        caller checks them once: out-of-range ones are clipped here, not reported)."""
        self._shift()
        np.take(agent_all, agent_index, out=self._agent, mode="clip")  # "clip": `out` is not buffered
        if target_index is None:
            self._target[:] = target
        else:
            np.take(target, target_index, out=self._target, mode="clip")
        np.take(params_all, params_index, out=self._params, mode="clip")
        block = self._block
        np.subtract(block, self.block_low, out=block)
        np.multiply(block, self.block_scale, out=block)
        return self._finish()

    def _shift(self) -> None:
        """Make room for the newest block (history slots move one block back)."""
        if self.history and self._filled:
            out = self._out
            out[self.block_size :] = out[: -self.block_size]  # numpy handles the overlap

    def _finish(self) -> np.ndarray:
        block, out = self._block, self._out
        np.subtract(block, 1.0, out=block)
        np.maximum(block, -OBS_CLIP, out=block)  # = np.clip (NaN stays NaN), without its Python wrapper
        np.minimum(block, OBS_CLIP, out=block)
        np.isnan(block, out=self._nan)  # NaN -> 0 (the centre); +-inf were clipped
        np.copyto(block, 0.0, where=self._nan)
        if self.history and not self._filled:
            out[self.block_size :] = np.tile(block, self.history)
        self._filled = True
        return out
