"""The live policy step in one numba call: gather descriptors -> observation -> MLP -> action.

Input / output: arrays owned by `server.agent.LiveAgent` (nothing is allocated here): the extractor's
frames and the 24 parameters, the index maps, the observation constants of
`agents.observation.ObservationBuilder` and the layers of `agents.policy.NumpyPolicy`.

It computes exactly what `ObservationBuilder.build_indexed` + `NumpyPolicy.act` compute (the same float32
steps for the observation, so that is bit for bit the same; the matrix products sum in another order
than BLAS, so actions agree to float32 rounding, ~1e-6), but as one compiled call instead of ~20 numpy
calls: ~3x less time per tick, and far less when the caches are cold between live blocks
(tests/server/test_agent.py checks the equality, benchmarks/live.py the time).
Inputs that are exactly zero (about half of a ReLU layer's outputs) are skipped: their products are
exact zeros, so the sums are unchanged, and an ensemble's merged network (`agents.training.ensemble`,
two members: 64 -> 256 -> 256 -> 8) costs about what one member did (p50 ~7 µs against 17 dense).
"""

from __future__ import annotations

import math

import numba
import numpy as np

OUTPUT_TANH, OUTPUT_CLIP, OUTPUT_UPDOWN = 0, 1, 2


@numba.njit(cache=True)
def act(
    agent_all: np.ndarray,
    agent_index: np.ndarray,
    target: np.ndarray,
    target_index: np.ndarray,
    params_all: np.ndarray,
    params_index: np.ndarray,
    low: np.ndarray,
    scale: np.ndarray,
    clip: float,
    obs: np.ndarray,
    block_size: int,
    history: int,
    filled: bool,
    weights: tuple[np.ndarray, ...],
    biases: tuple[np.ndarray, ...],
    outputs: tuple[np.ndarray, ...],
    relu: bool,
    output_kind: int,
    action: np.ndarray,
) -> None:
    """One step; `obs` keeps the history between calls (the caller tracks `filled`)."""
    if history > 0 and filled:
        for i in range(obs.shape[0] - 1, block_size - 1, -1):
            obs[i] = obs[i - block_size]
    k = agent_index.shape[0]
    for i in range(k):
        obs[i] = np.float32(agent_all[agent_index[i]])
        obs[k + i] = np.float32(target[target_index[i]])
    for i in range(params_index.shape[0]):
        obs[2 * k + i] = np.float32(params_all[params_index[i]])
    one = np.float32(1.0)
    top = np.float32(clip)
    for i in range(block_size):
        v = (obs[i] - low[i]) * scale[i] - one
        if v != v:
            v = np.float32(0.0)  # NaN -> 0 (the centre)
        elif v < -top:
            v = -top
        elif v > top:
            v = top
        obs[i] = v
    if history > 0 and not filled:
        for h in range(1, history + 1):
            for i in range(block_size):
                obs[h * block_size + i] = obs[i]
    x = obs
    last = len(weights) - 1
    for layer in range(len(weights)):
        w = weights[layer]
        b = biases[layer]
        out = outputs[layer]
        n_out = w.shape[1]
        for j in range(n_out):
            out[j] = 0.0
        for i in range(w.shape[0]):
            xi = x[i]
            if xi == 0.0:  # a ReLU's zero: its products are exact zeros, the sums stay the dense ones
                continue
            for j in range(n_out):
                out[j] += xi * w[i, j]
        for j in range(n_out):
            v = out[j] + b[j]
            if layer < last:
                v = max(v, np.float32(0.0)) if relu else np.float32(math.tanh(v))
            out[j] = v
        x = out
    if output_kind == OUTPUT_TANH:
        for j in range(action.shape[0]):
            action[j] = math.tanh(x[j])
    elif output_kind == OUTPUT_CLIP:
        for j in range(action.shape[0]):
            action[j] = min(max(x[j], -1.0), 1.0)
    else:  # up / stay / down per parameter: argmax of each triple, minus 1
        for j in range(action.shape[0]):
            best = 0
            for c in range(1, 3):
                if x[3 * j + c] > x[3 * j + best]:
                    best = c
            action[j] = best - 1.0


@numba.njit(cache=True)
def control_tick(
    params: np.ndarray,
    output: np.ndarray,
    action: np.ndarray,
    indices: np.ndarray,
    scale: float,
    apply: bool,
    coef: float,
    hold: bool,
    snap_index: np.ndarray,
    snap_steps: np.ndarray,
) -> None:
    """`ControlState`'s tick in one call: `params[indices] += action * scale` clipped to [0, 1] (if
    `apply`), then the output one-pole toward `params` (`coef`; 0: a copy) and snapped (unless `hold`).
    The same float32 steps as the numpy form (each product and sum rounded to float32), so the values
    are bit for bit those of `server.control`'s numpy reference (tests/server/test_control.py)."""
    if apply:
        s = np.float32(scale)
        zero, one = np.float32(0.0), np.float32(1.0)
        for i in range(indices.shape[0]):
            j = indices[i]
            p = params[j] + action[i] * s
            params[j] = min(max(p, zero), one)
    if hold:
        return
    if coef > 0.0:
        c = np.float32(coef)
        for j in range(output.shape[0]):
            output[j] = (output[j] - params[j]) * c + params[j]
    else:
        for j in range(output.shape[0]):
            output[j] = params[j]
    for k in range(snap_index.shape[0]):
        i = snap_index[k]
        steps = snap_steps[k]
        output[i] = np.rint(np.float64(output[i]) * steps) / steps
