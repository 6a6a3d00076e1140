"""agents.imitate.reward: RL-impro's shapings, weights and the smoothness term."""

from __future__ import annotations

import numpy as np
import pytest

from agents.imitate.reward import ImitationReward, match_silence, reward_weights, shaped_reward, weighted_rmse


def test_shapings() -> None:
    assert shaped_reward(0.0, "cubic") == pytest.approx(1.0)
    assert shaped_reward(0.5, "cubic") == pytest.approx(0.0)
    assert shaped_reward(1.0, "cubic") == pytest.approx(-1.0)
    assert shaped_reward(0.3, "linear") == pytest.approx(0.7)
    assert shaped_reward(0.0, "squared") == 1.0 and shaped_reward(0.5, "squared") == pytest.approx(0.0)
    assert shaped_reward(1.0, "squared") == pytest.approx(-3.0)


def test_squared_return_ranks_as_the_evaluation_rmse() -> None:
    """Two error sequences with the same mean per-tick rmse: the evaluation's RMSE prefers the even one,
    and so does the squared reward's return; the linear return cannot tell them apart."""
    even, uneven = np.full(4, 0.2), np.array([0.0, 0.0, 0.4, 0.4])
    evaluation = [float(np.sqrt(np.mean(e**2))) for e in (even, uneven)]
    assert evaluation[0] < evaluation[1]
    squared = [sum(shaped_reward(float(r), "squared") for r in e) for e in (even, uneven)]
    linear = [sum(shaped_reward(float(r), "linear") for r in e) for e in (even, uneven)]
    assert squared[0] > squared[1]
    assert linear[0] == pytest.approx(linear[1])
    assert shaped_reward(0.1, "prize") == 10.0 and shaped_reward(0.11, "prize") == -10.0
    assert shaped_reward(0.2, "prize", prize_threshold=0.25, prize_value=2.0) == 2.0
    with pytest.raises(ValueError, match="unknown reward kind"):
        shaped_reward(0.1, "quartic")


def test_weights_select_and_scale_descriptors() -> None:
    names = ("loudness_db", "centroid", "pitch_hz")
    w = reward_weights(names, ("centroid", "loudness_db"), {"centroid": 3.0})
    np.testing.assert_array_equal(w, [1.0, 3.0, 0.0])
    # pitch differs wildly but has no weight; centroid counts 3x
    rmse = weighted_rmse(np.array([0.0, 0.0, 1.0]), np.array([0.4, 0.2, 0.0]), w)
    assert rmse == pytest.approx(np.sqrt((0.16 + 3 * 0.04) / 4))
    with pytest.raises(ValueError, match="features_keep"):
        reward_weights(names, ("flatness",))
    with pytest.raises(ValueError, match=">= 0"):
        reward_weights(names, ("centroid",), {"centroid": -1.0})
    with pytest.raises(ValueError, match="positive"):
        reward_weights(names, ("centroid",), {"centroid": 0.0})


def test_smoothness_term() -> None:
    r = ImitationReward(np.array([1.0]), "linear", lambda_smooth=0.5, delta_max=0.1)
    still, rmse = r(np.array([0.2]), np.array([0.2]), np.zeros(4))
    moving, _ = r(np.array([0.2]), np.array([0.2]), np.full(4, 0.1))
    assert rmse == 0.0 and still == pytest.approx(1.0)
    assert moving == pytest.approx(1.0 - 0.5)


def test_silence_matches_silence_on_loudness_only() -> None:
    names = ("loudness_db", "centroid", "flatness")
    agent, target = np.array([0.0, 1.5, 1.0]), np.array([0.1, 0.2, 0.3])
    np.testing.assert_array_equal(match_silence(agent, target, names, True), [0.0, 0.2, 0.3])
    np.testing.assert_array_equal(match_silence(agent, target, names, False), agent)
    frames = match_silence(np.stack([agent, agent]), np.stack([target, target]), names, np.array([False, True]))
    np.testing.assert_array_equal(frames, [agent, [0.0, 0.2, 0.3]])
