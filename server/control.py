"""Parameter state between threads: the control state the OSC thread edits, and the frame exchange.

Input: OSC commands (enable, hold, step size, reset, manual parameter, preset; from the OSC thread)
and policy actions (deltas in [-1, 1] per controlled parameter; from the worker).
Output: the parameter frame `[24 params | note_midi | gate | onsets]` published by the worker and
read by the output callback through `FrameExchange`, without a lock on either side.

Threads: `ControlState` is written by the worker only, except its switches (`enabled`, `hold`,
`step_size`: single attribute stores, atomic under the GIL) and its command queue (a
`collections.deque`, whose append/popleft are atomic). `FrameExchange` is a sequence lock: the
worker (the only writer) makes the counter odd, copies, makes it even; the output callback copies
and retries if the counter moved, keeping its previous frame after a few tries (never waits).

Semantics: `/synth/param/<name>` sets that parameter now; if the agent controls it, the agent goes
on from the new value. `/synth/preset` sets all 24; `/agent/reset` goes back to the model's start
preset. `hold` freezes the frame (policy and smoothing stop; manual settings still apply);
`enable 0` pauses the policy only (smoothing settles on the last values).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from server import agent_kernel
from server import rt_kernel as rt
from synth.params import DISCRETE_INDICES, N_PARAMS, PARAMS

NOTE_INDEX = N_PARAMS  # frame[24]: MIDI note (fractional when gliding)
GATE_INDEX = N_PARAMS + 1  # frame[25]: 1.0 gate open, 0.0 closed
ONSETS_INDEX = N_PARAMS + 2  # frame[26]: count of note-ons so far (a new value means retrigger)
FRAME_SIZE = N_PARAMS + 3


class FrameExchange:
    """Latest parameter frame from the worker to the output callback (sequence lock, no blocking).

    The frame and the lock's state are arrays that the compiled output callback reads
    (`server.rt_kernel.frame_read`); `publish` and `read_into` run the same compiled code."""

    def __init__(self, size: int = FRAME_SIZE) -> None:
        self.shared = np.zeros(size, dtype=np.float32)
        self.state = np.zeros(2, dtype=np.int64)  # [sequence (odd while copying), stale reads (reader-owned)]

    def publish(self, frame: np.ndarray) -> None:
        """Writer (worker): copy `frame` in."""
        rt.frame_publish(self.shared, self.state, frame)

    def read_into(self, out: np.ndarray) -> bool:
        """Reader (output callback): copy the latest frame into `out`; False if it kept `out` as it was."""
        return bool(rt.frame_read(self.shared, self.state, out))

    @property
    def stale_reads(self) -> int:
        """Reads that gave up and kept the previous frame."""
        return int(self.state[rt.X_STALE])

    @property
    def version(self) -> int:
        return int(self.state[rt.X_SEQ]) >> 1


class ControlState:
    """The agent's parameter vector, the output (smoothed) frame and the performer's switches."""

    def __init__(self, start_preset_0to1: np.ndarray, *, step_size: float = 1.0, smoothing_coef: float = 0.0) -> None:
        if not 0.0 <= smoothing_coef < 1.0:
            raise ValueError(f"smoothing coefficient must be in [0, 1), got {smoothing_coef}")
        self.start_preset = _checked_vector(start_preset_0to1, "start preset").copy()
        self.params_0to1 = self.start_preset.copy()  # what the agent steers (worker-owned)
        self.output_0to1 = self.start_preset.copy()  # smoothed, snapped: what is sent and played
        self.enabled = True
        self.hold = False
        self.step_size = float(step_size)
        self.smoothing_coef = float(smoothing_coef)
        self._commands: deque[tuple[str, object]] = deque()
        self.commands_applied = 0
        self._warm_params = np.zeros_like(self.params_0to1)  # `warm` works on copies
        self._warm_output = np.zeros_like(self.output_0to1)

    # --- OSC thread: requests ---------------------------------------------------------------------
    def request_param(self, index: int, value_0to1: float) -> None:
        if not 0 <= index < N_PARAMS:
            raise ValueError(f"parameter index {index} outside 0..{N_PARAMS - 1}")
        if not (math.isfinite(value_0to1) and 0.0 <= value_0to1 <= 1.0):
            raise ValueError(f"parameter {PARAMS[index].name}: value {value_0to1} outside 0..1")
        self._commands.append(("param", (index, float(value_0to1))))

    def request_preset(self, vector_0to1: np.ndarray) -> None:
        self._commands.append(("preset", _checked_vector(vector_0to1, "preset").copy()))

    def request_reset(self) -> None:
        self._commands.append(("reset", None))

    def set_start_preset(self, vector_0to1: np.ndarray) -> None:
        """A new model's start preset (applied at the next reset)."""
        self._commands.append(("start", _checked_vector(vector_0to1, "start preset").copy()))

    def set_step_size(self, step_0to1: float) -> None:
        if not (math.isfinite(step_0to1) and 0.0 <= step_0to1 <= 1.0):
            raise ValueError(f"step size {step_0to1} outside 0..1")
        self.step_size = float(step_0to1)

    # --- worker -----------------------------------------------------------------------------------
    def apply_commands(self) -> bool:
        """Apply queued OSC commands in arrival order; True if any changed the parameters."""
        changed = False
        while self._commands:
            kind, arg = self._commands.popleft()
            if kind == "param":
                index, value = arg  # type: ignore[misc]
                self.params_0to1[index] = value
                self.output_0to1[index] = value
            elif kind == "preset":
                self.params_0to1[:] = arg  # type: ignore[index]
                self.output_0to1[:] = arg  # type: ignore[index]
            elif kind == "reset":
                self.params_0to1[:] = self.start_preset
                self.output_0to1[:] = self.start_preset
            elif kind == "start":
                self.start_preset[:] = arg  # type: ignore[index]
                continue
            changed = True
            self.commands_applied += 1
        if changed:
            _snap_in_place(self.output_0to1)
        return changed

    @property
    def policy_active(self) -> bool:
        return self.enabled and not self.hold

    def apply_action(self, action: np.ndarray, indices: np.ndarray, delta_max: float) -> None:
        """params[indices] += action * delta_max * step_size, clipped to [0, 1] (worker)."""
        self._step(action, indices, delta_max, apply=True, update=False)

    def update_output(self) -> None:
        """One control tick of output smoothing toward the agent's parameters (frozen while held)."""
        self._step(_NO_ACTION, _NO_INDICES, 0.0, apply=False, update=True)

    def tick(self, action: np.ndarray | None, indices: np.ndarray, delta_max: float) -> None:
        """`apply_action` (unless `action` is None) then `update_output`, in one compiled call (worker)."""
        if action is None:
            self._step(_NO_ACTION, _NO_INDICES, 0.0, apply=False, update=True)
        else:
            self._step(action, indices, delta_max, apply=True, update=True)

    def warm(self, action: np.ndarray, indices: np.ndarray, delta_max: float) -> None:
        """`tick` on scratch copies (changes nothing): the worker's cache warm-up before a tick block."""
        np.copyto(self._warm_params, self.params_0to1)
        np.copyto(self._warm_output, self.output_0to1)
        agent_kernel.control_tick(
            self._warm_params, self._warm_output, action, indices, delta_max * self.step_size, True,
            self.smoothing_coef, False, _SNAP_INDEX, _SNAP_DIVISOR,
        )  # fmt: skip

    def _step(self, action: np.ndarray, indices: np.ndarray, delta_max: float, *, apply: bool, update: bool) -> None:
        agent_kernel.control_tick(
            self.params_0to1, self.output_0to1, action, indices, delta_max * self.step_size, apply,
            self.smoothing_coef, self.hold or not update, _SNAP_INDEX, _SNAP_DIVISOR,
        )  # fmt: skip


def smoothing_coefficient(smoothing_s: float, tick_s: float) -> float:
    """One-pole coefficient for a time constant of `smoothing_s` at one update per `tick_s`."""
    if smoothing_s <= 0.0:
        return 0.0
    return math.exp(-tick_s / smoothing_s)


_SNAP_STEPS = tuple((i, PARAMS[i].n_steps - 1) for i in DISCRETE_INDICES)
_SNAP_INDEX = np.array([i for i, _ in _SNAP_STEPS], dtype=np.intp)
_SNAP_DIVISOR = np.array([steps for _, steps in _SNAP_STEPS], dtype=np.float64)
_NO_ACTION = np.zeros(0, dtype=np.float32)
_NO_INDICES = np.zeros(0, dtype=np.intp)


def _snap_in_place(x: np.ndarray) -> None:
    for i, steps in _SNAP_STEPS:
        x[i] = round(float(x[i]) * steps) / steps


def _checked_vector(vector: np.ndarray, what: str) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    if v.shape != (N_PARAMS,):
        raise ValueError(f"{what}: expected {N_PARAMS} parameters, got shape {v.shape}")
    if not np.all(np.isfinite(v)) or v.min() < 0.0 or v.max() > 1.0:
        raise ValueError(f"{what}: values must be finite and in 0..1")
    return v
