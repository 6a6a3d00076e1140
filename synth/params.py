"""The Serum-lite parameter table: the one source of the 24 parameters.

Input: nothing. Output: `PARAMS` (wire order), converters between the normalized [0,1] values
that learners, OSC and presets see and the physical values the DSP uses, and the names derived
from the table (OSC addresses, Pure Data receive names, preset schema, action-space layout).
Learners only ever see [0,1] (as torchsynth's `ModuleParameterRange`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

PARAM_TABLE_VERSION = "1.0"

Module = Literal["osc", "filter", "env", "lfo", "master"]
Curve = Literal["linear", "log"]

MODULES: tuple[Module, ...] = ("osc", "filter", "env", "lfo", "master")
WAVE_SHAPES = ("sine", "saw", "square", "triangle")
LFO_TARGETS = ("pitch", "filter", "amplitude")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: normalized x in [0,1] <-> physical value in [low, high]."""

    index: int
    name: str
    module: Module
    low: float
    high: float
    unit: str
    curve: Curve = "linear"
    snap: bool = False  # discrete: snapped to integers (or to `choices`)
    default_0to1: float = 0.0
    choices: tuple[str, ...] = ()
    doc: str = ""

    @property
    def continuous(self) -> bool:
        return not self.snap

    @property
    def n_steps(self) -> int:
        """Number of distinct values of a snapped parameter (0 for continuous ones)."""
        if not self.snap:
            return 0
        return len(self.choices) if self.choices else int(round(self.high - self.low)) + 1

    def snap_0to1(self, x: float) -> float:
        """Clamp to [0,1] and, for discrete parameters, move to the nearest allowed value."""
        x = min(1.0, max(0.0, float(x)))
        if not self.snap:
            return x
        steps = self.n_steps - 1
        return round(x * steps) / steps

    def to_value(self, x: float) -> float:
        """Normalized -> physical (snapped where discrete)."""
        x = self.snap_0to1(x)
        if self.curve == "log":
            return self.low * (self.high / self.low) ** x
        return self.low + x * (self.high - self.low)

    def from_value(self, value: float) -> float:
        """Physical -> normalized. Raises ValueError outside [low, high]."""
        lo, hi = min(self.low, self.high), max(self.low, self.high)
        if not lo - 1e-9 <= value <= hi + 1e-9:
            raise ValueError(f"{self.name}: value {value} {self.unit} outside [{lo}, {hi}]")
        if self.curve == "log":
            x = math.log(value / self.low) / math.log(self.high / self.low)
        else:
            x = (value - self.low) / (self.high - self.low)
        return self.snap_0to1(x)

    @property
    def osc_address(self) -> str:
        return f"/serumlite/{self.name}"

    @property
    def pd_receive(self) -> str:
        """The Pure Data `[r ...]` name that carries this parameter (normalized 0..1)."""
        return f"sl-{self.name}"


def _table() -> tuple[ParamSpec, ...]:
    rows: list[tuple] = [
        # name, module, low, high, unit, curve, snap, default, choices, doc
        ("osc1_wave", "osc", 0.0, 3.0, "morph", "linear", False, 1 / 3, (), "sine -> saw -> square -> triangle"),
        ("osc1_level", "osc", 0.0, 1.0, "gain", "linear", False, 0.8, (), "oscillator 1 gain"),
        ("osc2_wave", "osc", 0.0, 3.0, "morph", "linear", False, 2 / 3, (), "sine -> saw -> square -> triangle"),
        ("osc2_level", "osc", 0.0, 1.0, "gain", "linear", False, 0.0, (), "oscillator 2 gain"),
        ("osc2_semitones", "osc", -24.0, 24.0, "st", "linear", True, 0.5, (), "osc2 transpose, integers"),
        ("osc2_fine", "osc", -50.0, 50.0, "cents", "linear", False, 0.5, (), "osc2 fine tune"),
        ("unison_voices", "osc", 1.0, 7.0, "voices", "linear", True, 0.0, (), "unison voices per osc"),
        ("unison_detune", "osc", 0.0, 50.0, "cents", "linear", False, 0.2, (), "spread of unison voices"),
        ("noise_level", "osc", 0.0, 1.0, "gain", "linear", False, 0.0, (), "white noise gain"),
        ("filter_cutoff", "filter", 30.0, 20000.0, "Hz", "log", False, 0.8, (), "low-pass cutoff"),
        ("filter_resonance", "filter", 0.5, 20.0, "Q", "log", False, 0.1, (), "gentle to self-oscillation edge"),
        ("filter_env_amount", "filter", -4.0, 4.0, "oct", "linear", False, 0.5, (), "mod env -> cutoff"),
        ("amp_attack", "env", 0.001, 4.0, "s", "log", False, 0.1, (), "amp envelope attack"),
        ("amp_decay", "env", 0.001, 4.0, "s", "log", False, 0.5, (), "amp envelope decay"),
        ("amp_sustain", "env", 0.0, 1.0, "gain", "linear", False, 0.8, (), "amp envelope sustain"),
        ("amp_release", "env", 0.001, 4.0, "s", "log", False, 0.4, (), "amp envelope release"),
        ("mod_attack", "env", 0.001, 4.0, "s", "log", False, 0.1, (), "mod envelope attack"),
        ("mod_decay", "env", 0.001, 4.0, "s", "log", False, 0.5, (), "mod envelope decay"),
        ("mod_sustain", "env", 0.0, 1.0, "gain", "linear", False, 0.5, (), "mod envelope sustain"),
        ("mod_release", "env", 0.001, 4.0, "s", "log", False, 0.4, (), "mod envelope release"),
        ("lfo_rate", "lfo", 0.05, 20.0, "Hz", "log", False, 0.6, (), "LFO rate"),
        ("lfo_amount", "lfo", 0.0, 1.0, "depth", "linear", False, 0.0, (), "LFO depth"),
        ("lfo_target", "lfo", 0.0, 2.0, "target", "linear", True, 0.0, LFO_TARGETS, "pitch/filter/amplitude"),
        ("master_volume", "master", 0.0, 1.0, "gain", "linear", False, 0.7, (), "output gain"),
    ]
    return tuple(
        ParamSpec(i, n, m, lo, hi, u, c, s, d, ch, doc) for i, (n, m, lo, hi, u, c, s, d, ch, doc) in enumerate(rows)
    )


PARAMS: tuple[ParamSpec, ...] = _table()
N_PARAMS = len(PARAMS)
PARAM_NAMES: tuple[str, ...] = tuple(p.name for p in PARAMS)
PARAM_INDEX: dict[str, int] = {p.name: p.index for p in PARAMS}
CONTINUOUS_INDICES: tuple[int, ...] = tuple(p.index for p in PARAMS if p.continuous)
DISCRETE_INDICES: tuple[int, ...] = tuple(p.index for p in PARAMS if p.snap)
OSC_PARAMS_ADDRESS = "/serumlite/params"


def param(name: str) -> ParamSpec:
    """Look a parameter up by name; the error lists the known names."""
    try:
        return PARAMS[PARAM_INDEX[name]]
    except KeyError:
        raise KeyError(f"unknown Serum-lite parameter '{name}' (known: {', '.join(PARAM_NAMES)})") from None


def module_indices(module: Module) -> tuple[int, ...]:
    if module not in MODULES:
        raise ValueError(f"unknown module '{module}' (known: {', '.join(MODULES)})")
    return tuple(p.index for p in PARAMS if p.module == module)


def indices_of(names: Sequence[str]) -> tuple[int, ...]:
    """Indices of parameter names (or module names, expanded), in wire order, no duplicates."""
    out: set[int] = set()
    for name in names:
        if name in MODULES:
            out.update(module_indices(name))  # type: ignore[arg-type]
        else:
            out.add(param(name).index)
    return tuple(sorted(out))


def default_vector() -> np.ndarray:
    """The neutral patch, normalized, shape [24] float32."""
    return np.array([p.default_0to1 for p in PARAMS], dtype=np.float32)


def snap_vector(x: np.ndarray) -> np.ndarray:
    """Clamp a [..., 24] normalized array to [0,1] and snap the discrete parameters (new array)."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0).copy()
    if x.shape[-1] != N_PARAMS:
        raise ValueError(f"expected a last dimension of {N_PARAMS} parameters, got shape {x.shape}")
    for i in DISCRETE_INDICES:
        steps = PARAMS[i].n_steps - 1
        x[..., i] = np.round(x[..., i] * steps) / steps
    return x


def to_values(x: np.ndarray) -> np.ndarray:
    """Normalized [..., 24] -> physical values [..., 24] (float64), vectorized."""
    x = snap_vector(x).astype(np.float64)
    out = np.empty_like(x)
    for p in PARAMS:
        if p.curve == "log":
            out[..., p.index] = p.low * (p.high / p.low) ** x[..., p.index]
        else:
            out[..., p.index] = p.low + x[..., p.index] * (p.high - p.low)
    return out


def table_as_dicts() -> list[dict[str, object]]:
    """The table as plain data (for `python -m synth params --json`, docs and generators)."""
    return [
        {
            "index": p.index,
            "name": p.name,
            "module": p.module,
            "low": p.low,
            "high": p.high,
            "unit": p.unit,
            "curve": p.curve,
            "snap": p.snap,
            "choices": list(p.choices),
            "default_0to1": round(p.default_0to1, 6),
            "osc_address": p.osc_address,
            "pd_receive": p.pd_receive,
            "doc": p.doc,
        }
        for p in PARAMS
    ]
