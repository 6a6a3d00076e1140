"""The model directory and the pickle-free policy: observation -> action, in numpy.

Input: `models/<name>/` with `model.yaml` and `policy.safetensors` (the deterministic actor's linear
layers `actor.<i>.weight` [out, in] / `actor.<i>.bias` [out], float32). Output: `LoadedModel`
(metadata + `NumpyPolicy`). Nothing here imports torch or unpickles anything, so the live server
can load models on stage. Training writes models through `write_model_dir`.

Output squashing of the last layer (`policy.output` in model.yaml):
- `tanh`: continuous actions in [-1, 1] (SAC / TD3 actors), scaled by `action.delta_max` later;
- `clip`: continuous actions clipped to [-1, 1] (PPO / A2C Gaussian means);
- `updown`: discrete up/stay/down per parameter: the layer has 3 x P outputs, the action is
  argmax - 1 per parameter, in {-1, 0, +1}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from synth.params import N_PARAMS, PARAM_NAMES, PARAM_TABLE_VERSION

MODEL_FORMAT_VERSION = 1
MODEL_YAML = "model.yaml"
POLICY_FILE = "policy.safetensors"
Activation = Literal["relu", "tanh"]
OutputKind = Literal["tanh", "clip", "updown"]
REQUIRED_KEYS = (
    "format_version",
    "task",
    "param_table_version",
    "param_order",
    "controlled_params",
    "descriptor_names",
    "observation",
    "action",
    "start_preset",
    "policy",
)


class ModelError(ValueError):
    """A model directory that cannot be used (one line: the file and the problem named)."""


class NumpyPolicy:
    """A feed-forward actor evaluated with preallocated numpy buffers (no allocation per call)."""

    def __init__(
        self,
        weights: Sequence[tuple[np.ndarray, np.ndarray]],
        activation: Activation = "relu",
        output: OutputKind = "tanh",
    ) -> None:
        if not weights:
            raise ModelError("policy has no layers")
        self._w = [np.ascontiguousarray(w.T, dtype=np.float32) for w, _ in weights]  # [in, out]
        self._b = [np.ascontiguousarray(b, dtype=np.float32) for _, b in weights]
        for i, (w, b) in enumerate(zip(self._w, self._b, strict=True)):
            if b.shape != (w.shape[1],):
                raise ModelError(f"layer {i}: bias shape {b.shape} does not fit weight shape {w.T.shape}")
            if i and w.shape[0] != self._w[i - 1].shape[1]:
                raise ModelError(f"layer {i}: input size {w.shape[0]} != previous output {self._w[i - 1].shape[1]}")
        if activation not in ("relu", "tanh"):
            raise ModelError(f"unknown activation '{activation}' (known: relu, tanh)")
        if output not in ("tanh", "clip", "updown"):
            raise ModelError(f"unknown policy output '{output}' (known: tanh, clip, updown)")
        if output == "updown" and self._w[-1].shape[1] % 3:
            raise ModelError(f"updown output needs 3 x P units, got {self._w[-1].shape[1]}")
        self.activation = activation
        self.output = output
        self.obs_size = self._w[0].shape[0]
        self.action_size = self._w[-1].shape[1] // 3 if output == "updown" else self._w[-1].shape[1]
        self._bufs = [np.zeros(w.shape[1], dtype=np.float32) for w in self._w]
        layers = list(zip(self._w, self._b, self._bufs, strict=True))
        self._hidden = tuple(layers[:-1])  # (weight [in, out], bias, output buffer): vector @ matrix, in place
        self._last = layers[-1]
        self._relu = activation == "relu"
        self._action = np.zeros(self.action_size, dtype=np.float32)

    @property
    def layers(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """The layers as (weight [in, out], bias [out]) float32 pairs: the arrays `act` uses (do not modify)."""
        return tuple(zip(self._w, self._b, strict=True))

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return (self.obs_size, *(w.shape[1] for w in self._w))

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action for one observation. Returns a buffer overwritten by the next call."""
        if obs.shape != (self.obs_size,):
            raise ValueError(f"observation shape {obs.shape} != ({self.obs_size},)")
        x = obs
        relu = self._relu
        for w, b, buf in self._hidden:
            np.matmul(x, w, out=buf)
            np.add(buf, b, out=buf)
            if relu:
                np.maximum(buf, 0.0, out=buf)
            else:
                np.tanh(buf, out=buf)
            x = buf
        w, b, out = self._last
        np.matmul(x, w, out=out)
        np.add(out, b, out=out)
        if self.output == "tanh":
            np.tanh(out, out=self._action)
        elif self.output == "clip":
            np.clip(out, -1.0, 1.0, out=self._action)
        else:
            self._action[:] = out.reshape(self.action_size, 3).argmax(axis=1)
            self._action -= 1.0
        return self._action

    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The layers as (weight [out, in], bias [out]) pairs, copies."""
        return [(w.T.copy(), b.copy()) for w, b in zip(self._w, self._b, strict=True)]


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    meta: Mapping[str, Any]
    policy: NumpyPolicy

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def start_preset(self) -> np.ndarray:
        return np.asarray(self.meta["start_preset"], dtype=np.float32)

    @property
    def controlled_indices(self) -> tuple[int, ...]:
        return tuple(PARAM_NAMES.index(n) for n in self.meta["controlled_params"])


def read_model_yaml(model_dir: str | Path) -> dict[str, Any]:
    """Read and check `model.yaml` (keys, parameter table, shapes); does not read the weights."""
    path = Path(model_dir) / MODEL_YAML
    if not Path(model_dir).is_dir():
        raise ModelError(f"{model_dir}: model directory not found")
    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise ModelError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(meta, dict):
        raise ModelError(f"{path}: expected a mapping at the top level")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelError(f"{path}: missing key(s) {', '.join(missing)}")
    if meta["format_version"] != MODEL_FORMAT_VERSION:
        raise ModelError(
            f"{path}: format_version {meta['format_version']!r}, this SoundGym reads {MODEL_FORMAT_VERSION}"
        )
    if list(meta["param_order"]) != list(PARAM_NAMES) or str(meta["param_table_version"]) != PARAM_TABLE_VERSION:
        raise ModelError(
            f"{path}: trained for parameter table {meta['param_table_version']!r} with another order; "
            f"this synth has table {PARAM_TABLE_VERSION}"
        )
    unknown = [n for n in meta["controlled_params"] if n not in PARAM_NAMES]
    if unknown:
        raise ModelError(f"{path}: controlled_params has unknown parameter(s) {unknown}")
    start = meta["start_preset"]
    if not isinstance(start, list) or len(start) != N_PARAMS or not all(_is_unit(v) for v in start):
        raise ModelError(f"{path}: start_preset must be {N_PARAMS} numbers in [0, 1]")
    for key in ("observation", "action", "policy"):
        if not isinstance(meta[key], dict):
            raise ModelError(f"{path}: '{key}' must be a mapping")
    return meta


def _is_unit(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0


def load_model(model_dir: str | Path) -> LoadedModel:
    """Read `model.yaml` and the pickle-free weights; check that the shapes agree."""
    model_dir = Path(model_dir)
    meta = read_model_yaml(model_dir)
    pol = meta["policy"]
    wfile = model_dir / str(pol.get("file", POLICY_FILE))
    try:
        tensors = load_file(str(wfile))
    except FileNotFoundError as exc:
        raise ModelError(f"{wfile}: policy weights not found") from exc
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{wfile}: not a readable safetensors file ({exc})") from exc
    n_layers = sum(1 for k in tensors if k.startswith("actor.") and k.endswith(".weight"))
    try:
        weights = [(tensors[f"actor.{i}.weight"], tensors[f"actor.{i}.bias"]) for i in range(n_layers)]
    except KeyError as exc:
        raise ModelError(f"{wfile}: missing tensor {exc.args[0]}") from exc
    policy = NumpyPolicy(weights, activation=pol.get("activation", "relu"), output=pol.get("output", "tanh"))
    obs_size = int(meta["observation"].get("size", -1))
    act_size = int(meta["action"].get("size", -1))
    if policy.obs_size != obs_size or policy.action_size != act_size:
        raise ModelError(
            f"{wfile}: weights map {policy.obs_size} -> {policy.action_size}, "
            f"model.yaml says observation {obs_size} -> action {act_size}"
        )
    return LoadedModel(path=model_dir, meta=meta, policy=policy)


def write_model_dir(
    model_dir: str | Path,
    meta: Mapping[str, Any],
    weights: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    activation: Activation = "relu",
    output: OutputKind = "tanh",
) -> Path:
    """Write `policy.safetensors` and `model.yaml` (the format keys are filled in here)."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    policy = NumpyPolicy(weights, activation=activation, output=output)  # validates the shapes
    tensors: dict[str, np.ndarray] = {}
    for i, (w, b) in enumerate(weights):
        tensors[f"actor.{i}.weight"] = np.ascontiguousarray(w, dtype=np.float32)
        tensors[f"actor.{i}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
    save_file(tensors, str(model_dir / POLICY_FILE))
    full = {
        "format_version": MODEL_FORMAT_VERSION,
        "param_table_version": PARAM_TABLE_VERSION,
        "param_order": list(PARAM_NAMES),
        **dict(meta),
        "policy": {
            "file": POLICY_FILE,
            "layer_sizes": list(policy.layer_sizes),
            "activation": activation,
            "output": output,
        },
    }
    full["observation"] = {**dict(full.get("observation", {})), "size": policy.obs_size}
    full["action"] = {**dict(full.get("action", {})), "size": policy.action_size}
    (model_dir / MODEL_YAML).write_text(yaml.safe_dump(_plain(full), sort_keys=False), encoding="utf-8")
    return model_dir


def _plain(obj: Any) -> Any:
    """numpy scalars/arrays and tuples -> plain YAML-safe Python."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
