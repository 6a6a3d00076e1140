"""The live policy step (`LiveAgent.act`, one numba call) against training's numpy pieces
(`ObservationBuilder.build_indexed` + `NumpyPolicy.act`), for every activation, output and history."""

from __future__ import annotations

import itertools
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from agents.policy import write_model_dir
from features.names import DESCRIPTOR_NAMES
from server.agent import LiveAgent
from synth.params import PARAM_NAMES, default_vector

DESCRIPTORS = ("loudness_db", "centroid", "flatness", "pitch_hz", "pitch_confidence")
CONTROLLED = ("filter_cutoff", "osc1_wave", "master_volume")


def _model(tmp_path: Path, activation: str, output: str, history: int, seed: int = 0) -> LiveAgent:
    rng = np.random.default_rng(seed)
    k, p = len(DESCRIPTORS), len(CONTROLLED)
    obs_size = (2 * k + p) * (1 + history)
    n_out = 3 * p if output == "updown" else p
    sizes = [obs_size, 24, 16, n_out]
    weights = [
        (rng.normal(0, 0.5, (o, i)).astype(np.float32), rng.normal(0, 0.2, o).astype(np.float32))
        for i, o in itertools.pairwise(sizes)
    ]
    meta = {
        "task": "imitate",
        "algorithm": "test",
        "controlled_params": list(CONTROLLED),
        "descriptor_names": list(DESCRIPTORS),
        "normalization": {
            "loudness_db": {"low": -80.0, "high": 0.0},
            "centroid": {"low": 50.0, "high": 8000.0},
            "flatness": {"low": -60.0, "high": 0.0},
            "pitch_hz": {"low": 0.0, "high": 2000.0},
            "pitch_confidence": {"low": 0.0, "high": 1.0},
        },
        "observation": {"history": history},
        "action": {"kind": "continuous", "delta_max": 0.05},
        "start_preset": [float(v) for v in default_vector()],
    }
    path = write_model_dir(
        tmp_path / f"{activation}_{output}_{history}", meta, weights, activation=activation, output=output
    )  # type: ignore[arg-type]
    return LiveAgent.from_dir(path, DESCRIPTOR_NAMES)


def _frames(rng: np.random.Generator, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    agent = rng.normal(0, 1000, len(DESCRIPTOR_NAMES)).astype(np.float32)
    target = rng.normal(0, 1000, len(DESCRIPTOR_NAMES)).astype(np.float32)
    if step % 3 == 1:
        target[DESCRIPTOR_NAMES.index("centroid")] = np.nan  # NaN -> 0 in the observation
        agent[DESCRIPTOR_NAMES.index("loudness_db")] = np.inf  # clipped
    params = rng.random(len(PARAM_NAMES)).astype(np.float32)
    return agent, target, params


@pytest.mark.parametrize(
    ("activation", "output", "history"),
    [("relu", "tanh", 0), ("tanh", "clip", 1), ("relu", "updown", 2), ("tanh", "tanh", 2)],
)
def test_live_step_equals_the_numpy_builder_and_policy(
    tmp_path: Path, activation: str, output: str, history: int
) -> None:
    live = _model(tmp_path, activation, output, history)
    builder, policy = live.builder, live.model.policy
    rng = np.random.default_rng(1)
    for step in range(8):
        if step == 5:
            live.reset()  # history starts afresh on both sides
            builder.reset()
        agent, target, params = _frames(rng, step)
        got = live.act(agent, target, params).copy()
        obs = builder.build_indexed(
            agent, live.descriptor_index, target, live.descriptor_index, params, live.controlled
        )
        np.testing.assert_array_equal(live.observation(), obs)  # the observation: bit for bit
        expected = policy.act(obs)
        if output == "updown":
            np.testing.assert_array_equal(got, expected)
        else:
            np.testing.assert_allclose(got, expected, atol=2e-6)  # sums in another order than BLAS


def test_model_order_target_and_allocation_free(tmp_path: Path) -> None:
    live = _model(tmp_path, "relu", "tanh", 1)
    rng = np.random.default_rng(2)
    agent, target, params = _frames(rng, 0)
    by_name = live.act(agent, target, params).copy()
    live.reset()
    external = target[live.descriptor_index].copy()  # `--input osc`: the model's K descriptors
    np.testing.assert_array_equal(live.act(agent, external, params, target_is_model_order=True), by_name)
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    for _ in range(200):
        live.act(agent, target, params)
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert after - before < 1024 and peak - before < 4096, (after - before, peak - before)


def test_warm_changes_nothing_the_next_step_sees(tmp_path: Path) -> None:
    """`warm()` (the worker's cache warm-up before a tick) runs a step on scratch buffers: with history,
    the actions and observations of a warmed agent are those of one that never warmed."""
    plain, warmed = _model(tmp_path / "a", "relu", "tanh", 2), _model(tmp_path / "b", "relu", "tanh", 2)
    rng = np.random.default_rng(3)
    for step in range(6):
        agent, target, params = _frames(rng, step)
        warmed.warm(agent, target, params)
        expected = plain.act(agent, target, params).copy()
        np.testing.assert_array_equal(warmed.act(agent, target, params), expected)
        np.testing.assert_array_equal(warmed.observation(), plain.observation())
        warmed.warm(target, agent, params)  # whatever it is fed
