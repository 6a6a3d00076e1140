"""agents.observation: the documented layout, scaling, clipping, history and buffer reuse."""

from __future__ import annotations

import numpy as np
import pytest

from agents.observation import OBS_CLIP, DescriptorScale, ObservationBuilder

SCALE = DescriptorScale(("loudness_db", "centroid"), np.array([-60.0, 100.0]), np.array([0.0, 2100.0]))


def test_layout_and_scaling() -> None:
    b = ObservationBuilder(SCALE, n_controlled=3)
    obs = b.build(np.array([-30.0, 100.0]), np.array([0.0, 1100.0]), np.array([0.0, 0.5, 1.0]))
    # [agent (K) | target (K) | params (P)], each mapped to 2x-1
    np.testing.assert_allclose(obs, [0.0, -1.0, 1.0, 0.0, -1.0, 0.0, 1.0])
    assert obs.dtype == np.float32 and b.size == 7
    layout = b.layout()
    assert [blk["name"] for blk in layout["block"]] == ["agent_descriptors", "target_descriptors", "controlled_params"]
    assert layout["size"] == 7 and layout["history"] == 0


def test_clipping_and_nan() -> None:
    b = ObservationBuilder(SCALE, n_controlled=1)
    obs = b.build(np.array([600.0, np.nan]), np.array([-1e9, 0.0]), np.array([0.5]))
    assert obs[0] == OBS_CLIP and obs[2] == -OBS_CLIP
    assert obs[1] == 0.0  # NaN -> 0 (the centre), never propagated to the policy


def test_history_shifts_most_recent_first() -> None:
    b = ObservationBuilder(SCALE, n_controlled=1, history=2)
    assert b.size == 5 * 3

    def frame(v: float) -> np.ndarray:
        return b.build(np.array([v, 100.0]), np.array([v, 100.0]), np.array([0.0])).copy()

    first = frame(-60.0)  # scaled -1: every slot filled with the first block
    np.testing.assert_allclose(first.reshape(3, 5)[:, 0], [-1, -1, -1])
    frame(-30.0)
    third = frame(0.0)
    np.testing.assert_allclose(third.reshape(3, 5)[:, 0], [1.0, 0.0, -1.0])
    b.reset()
    np.testing.assert_allclose(frame(0.0).reshape(3, 5)[:, 0], [1.0, 1.0, 1.0])


def test_build_reuses_its_buffer() -> None:
    b = ObservationBuilder(SCALE, n_controlled=2, history=1)
    first = b.build(np.zeros(2), np.zeros(2), np.zeros(2))
    second = b.build(np.ones(2), np.ones(2), np.ones(2))
    assert first is second


def test_scale_dict_round_trip_subset_and_errors() -> None:
    data = SCALE.to_dict()
    assert data == {"loudness_db": {"low": -60.0, "high": 0.0}, "centroid": {"low": 100.0, "high": 2100.0}}
    back = DescriptorScale.from_dict(data, ["centroid"])
    assert back.names == ("centroid",) and back.low[0] == 100.0
    np.testing.assert_allclose(SCALE.to_0to1(np.array([-30.0, 1100.0])), [0.5, 0.5])
    with pytest.raises(ValueError, match="flatness"):
        DescriptorScale.from_dict(data, ["flatness"])
    with pytest.raises(KeyError, match="rolloff"):
        SCALE.subset(["rolloff"])
    with pytest.raises(ValueError, match="history"):
        ObservationBuilder(SCALE, 1, history=-1)


@pytest.mark.parametrize("history", [0, 2])
def test_build_indexed_equals_build_of_the_picked_values(history: int) -> None:
    rng = np.random.default_rng(5)
    a, b, c = (ObservationBuilder(SCALE, n_controlled=2, history=history) for _ in range(3))
    agent_index, params_index = np.array([3, 1]), np.array([0, 4])
    for step in range(4):
        agent_all = (rng.normal(0, 800, 6) + 500).astype(np.float32)
        target_all = (rng.normal(0, 800, 6) + 500).astype(np.float32)
        target_all[1] = np.nan if step == 2 else target_all[1]
        params = rng.random(5).astype(np.float32)
        expected = a.build(agent_all[agent_index], target_all[agent_index], params[params_index])
        got = b.build_indexed(agent_all, agent_index, target_all, agent_index, params, params_index)
        np.testing.assert_array_equal(got, expected)  # bit for bit: the same float32 steps
        model_order = c.build_indexed(agent_all, agent_index, target_all[agent_index], None, params, params_index)
        np.testing.assert_array_equal(model_order, expected)
