"""server.control: the compiled control tick equals the numpy form step for step, and warm() changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from server.control import ControlState, smoothing_coefficient
from synth.params import DISCRETE_INDICES, N_PARAMS, PARAMS, default_vector


def _numpy_tick(params: np.ndarray, out: np.ndarray, action: np.ndarray | None, indices: np.ndarray,
                scale: float, coef: float, hold: bool) -> None:  # fmt: skip
    """The reference: the numpy statements `ControlState` ran before its kernel."""
    if action is not None:
        params[indices] += action * scale
        np.maximum(params, 0.0, out=params)
        np.minimum(params, 1.0, out=params)
    if hold:
        return
    if coef > 0.0:
        out -= params
        out *= coef
        out += params
    else:
        out[:] = params
    for i in DISCRETE_INDICES:
        steps = PARAMS[i].n_steps - 1
        out[i] = round(float(out[i]) * steps) / steps


@pytest.mark.parametrize("smoothing_s", [0.0, 0.05])
def test_tick_equals_the_numpy_form_bit_for_bit(smoothing_s: float) -> None:
    rng = np.random.default_rng(0)
    coef = smoothing_coefficient(smoothing_s, 0.032)
    ctl = ControlState(default_vector(), step_size=0.7, smoothing_coef=coef)
    params, out = ctl.params_0to1.copy(), ctl.output_0to1.copy()
    indices = np.array(sorted(rng.choice(N_PARAMS, 10, replace=False)), dtype=np.intp)
    clipped_low = clipped_high = 0
    for step in range(300):
        action = rng.uniform(-1.0, 1.0, len(indices)).astype(np.float32)
        ctl.hold = step % 37 > 30
        active = step % 11 != 5
        ctl.tick(action if active else None, indices, 0.3)
        _numpy_tick(params, out, action if active else None, indices, 0.3 * 0.7, coef, ctl.hold)
        np.testing.assert_array_equal(ctl.params_0to1, params)
        np.testing.assert_array_equal(ctl.output_0to1, out)
        clipped_low += int(np.sum(params[indices] == 0.0))
        clipped_high += int(np.sum(params[indices] == 1.0))
    assert clipped_low > 10 and clipped_high > 10  # the clips were exercised


def test_apply_and_update_separately_equal_the_tick_and_warm_changes_nothing() -> None:
    rng = np.random.default_rng(1)
    a = ControlState(default_vector(), smoothing_coef=0.5)
    b = ControlState(default_vector(), smoothing_coef=0.5)
    indices = np.arange(0, N_PARAMS, 2, dtype=np.intp)
    for _ in range(50):
        action = rng.uniform(-1.0, 1.0, len(indices)).astype(np.float32)
        b.warm(action, indices, 0.2)
        a.apply_action(action, indices, 0.2)
        a.update_output()
        b.tick(action, indices, 0.2)
        np.testing.assert_array_equal(a.params_0to1, b.params_0to1)
        np.testing.assert_array_equal(a.output_0to1, b.output_0to1)
    a.hold = True
    frozen = a.output_0to1.copy()
    a.tick(np.ones(len(indices), dtype=np.float32), indices, 0.2)
    np.testing.assert_array_equal(a.output_0to1, frozen)  # held: the output does not move
    assert not np.array_equal(a.params_0to1, b.params_0to1)  # ... though the policy's vector did
