"""The model as the live loop uses it: descriptor frames + parameters in, parameter deltas out.

Input: a model directory (`agents.policy.load_model`: pickle-free weights + `model.yaml`), the
names of the descriptors the live extractor produces, and per control tick the agent's own
descriptors (all names), the target's (all names, or only the model's names in `--input osc`
mode) and the 24 current parameters.
Output: `LiveAgent.act(...)` -> deltas in [-1, 1] for `controlled` (a buffer overwritten next
call), to be scaled by `delta_max` and the step size (`server.control.ControlState.apply_action`).

The observation is the one `agents.observation.ObservationBuilder` builds in training, and the policy
`agents.policy.NumpyPolicy`; per tick both run as one compiled call (`server.agent_kernel.act`, same
observation bit for bit, actions to float32 rounding). Loading (and the kernel's first call) happens on
a non-audio thread; the worker swaps a `LiveAgent` reference (hot-swap).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.observation import OBS_CLIP, DescriptorScale, ObservationBuilder
from agents.policy import LoadedModel, ModelError, load_model
from server import agent_kernel


class LiveAgent:
    """A loaded model with the index maps and buffers the worker needs (allocation-free `act`)."""

    def __init__(self, model: LoadedModel, extractor_names: Sequence[str]) -> None:
        meta = model.meta
        where = model.path / "model.yaml"
        self.model = model
        self.name = model.name
        self.descriptor_names: tuple[str, ...] = tuple(str(n) for n in meta["descriptor_names"])
        missing = [n for n in self.descriptor_names if n not in extractor_names]
        if missing:
            raise ModelError(f"{where}: descriptor(s) {missing} are not computed by the live extractor")
        self.descriptor_index = np.array([list(extractor_names).index(n) for n in self.descriptor_names], np.intp)
        normalization = meta.get("normalization")
        if not isinstance(normalization, Mapping):
            raise ModelError(f"{where}: 'normalization' must map descriptor names to low/high")
        try:
            scale = DescriptorScale.from_dict(normalization, self.descriptor_names)
        except ValueError as exc:
            raise ModelError(f"{where}: {exc}") from exc
        self.controlled = np.array(model.controlled_indices, dtype=np.intp)
        history = int(meta["observation"].get("history", 0))
        self.builder = ObservationBuilder(scale, n_controlled=len(self.controlled), history=history)
        if self.builder.size != model.policy.obs_size:
            raise ModelError(
                f"{where}: observation of {self.builder.size} values (2 x {len(self.descriptor_names)} descriptors + "
                f"{len(self.controlled)} parameters, history {history}) but the policy takes {model.policy.obs_size}"
            )
        if model.policy.action_size != len(self.controlled):
            raise ModelError(
                f"{where}: policy outputs {model.policy.action_size} actions for "
                f"{len(self.controlled)} controlled params"
            )
        self.delta_max = _positive(meta["action"].get("delta_max"), f"{where}: action.delta_max")
        self.start_preset = model.start_preset
        tick = meta.get("tick_s")
        self.tick_s: float | None = _positive(tick, f"{where}: tick_s") if tick is not None else None
        # the live output smoothing the model was trained through (models from before 2026-12-02: none)
        self.output_smoothing_s = _non_negative(meta.get("output_smoothing_s", 0.0), f"{where}: output_smoothing_s")
        policy = model.policy
        layers = policy.layers
        self._weights = tuple(w for w, _ in layers)
        self._biases = tuple(b for _, b in layers)
        self._outputs = tuple(np.zeros(w.shape[1], dtype=np.float32) for w in self._weights)
        self._relu = policy.activation == "relu"
        self._output_kind = {
            "tanh": agent_kernel.OUTPUT_TANH,
            "clip": agent_kernel.OUTPUT_CLIP,
            "updown": agent_kernel.OUTPUT_UPDOWN,
        }[policy.output]
        self._obs = np.zeros(self.builder.size, dtype=np.float32)
        self._filled = False
        self._model_order = np.arange(len(self.descriptor_names), dtype=np.intp)
        self._action = np.zeros(policy.action_size, dtype=np.float32)
        self._warm_obs = np.zeros_like(self._obs)  # `warm` works on copies: the history stays untouched
        self._warm_action = np.zeros_like(self._action)
        # numba loads (or, on a fresh checkout, compiles) the kernel here, not on the first live tick
        silence = np.zeros(len(extractor_names), dtype=np.float32)
        self.act(silence, silence, self.start_preset)
        self.reset()

    @classmethod
    def from_dir(cls, model_dir: str | Path, extractor_names: Sequence[str]) -> LiveAgent:
        """Load and check a model directory (ModelError, a ValueError, names the file and the problem)."""
        return cls(load_model(model_dir), extractor_names)

    @property
    def n_descriptors(self) -> int:
        return len(self.descriptor_names)

    def reset(self) -> None:
        self.builder.reset()
        self._filled = False

    def act(
        self, agent_all: np.ndarray, target: np.ndarray, params_0to1: np.ndarray, *, target_is_model_order: bool = False
    ) -> np.ndarray:
        """One policy step. `target` holds every extractor descriptor, or (external features) the model's K.
        Returns a buffer overwritten by the next call."""
        builder = self.builder
        agent_kernel.act(
            agent_all,
            self.descriptor_index,
            target,
            self._model_order if target_is_model_order else self.descriptor_index,
            params_0to1,
            self.controlled,
            builder.block_low,
            builder.block_scale,
            OBS_CLIP,
            self._obs,
            builder.block_size,
            builder.history,
            self._filled,
            self._weights,
            self._biases,
            self._outputs,
            self._relu,
            self._output_kind,
            self._action,
        )
        self._filled = True
        return self._action

    def warm(self, agent_all: np.ndarray, target: np.ndarray, params_0to1: np.ndarray) -> None:
        """A policy step on scratch copies of the observation and action, changing nothing the next `act`
        sees: the live worker runs it just before a tick block, so that the tick's step finds the kernel and
        the weights in the caches (after a block's idle sleep it runs ~10x slower cold)."""
        np.copyto(self._warm_obs, self._obs)
        builder = self.builder
        agent_kernel.act(
            agent_all, self.descriptor_index, target, self.descriptor_index, params_0to1, self.controlled,
            builder.block_low, builder.block_scale, OBS_CLIP, self._warm_obs, builder.block_size, builder.history,
            self._filled, self._weights, self._biases, self._outputs, self._relu, self._output_kind,
            self._warm_action,
        )  # fmt: skip

    @property
    def warm_action(self) -> np.ndarray:
        """The scratch action of the last `warm` (for warming the control step with it)."""
        return self._warm_action

    def observation(self) -> np.ndarray:
        """The observation of the last `act` (a buffer overwritten by the next call)."""
        return self._obs

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.model.path),
            "descriptors": list(self.descriptor_names),
            "controlled_params": [str(n) for n in self.model.meta["controlled_params"]],
            "delta_max": self.delta_max,
        }


def _non_negative(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ModelError(f"{what} must be a number >= 0, got {value!r}")
    return float(value)


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ModelError(f"{what} must be a number > 0, got {value!r}")
    return float(value)
