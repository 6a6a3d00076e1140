"""Baselines under the matching protocol (test doubles for synth and loss)."""

from __future__ import annotations

import numpy as np
import pytest

from agents.baselines import BASELINES, MatchProblem
from agents.match.curriculum import active_mask, held_out_presets
from tests.agents.test_match_doubles import FakeHearing, FakeRenderer


def _problem(n: int = 4, stage: int = 1, epsilon: float = 0.02) -> MatchProblem:
    return MatchProblem(held_out_presets(n, seed=3), stage, FakeRenderer(), FakeHearing(), epsilon)


@pytest.mark.parametrize("name", ["random", "cmaes", "gradient"])
def test_baselines_respect_budget_and_held_parameters(name: str) -> None:
    problem = _problem()
    result = BASELINES[name](problem, 12, seed=0)
    assert (result.renders == 12).all()
    assert problem.renders == 12 * 4
    held = ~active_mask(1).astype(bool)
    np.testing.assert_allclose(result.best_x[:, held], problem.targets[:, held])
    start_loss = problem.evaluate(np.arange(4), problem.starts)
    assert np.isfinite(result.best_loss).all()
    assert np.median(result.best_loss) <= np.median(start_loss) + 1e-6
    assert all(len(t) >= 1 for t in result.trajectories)


def test_cmaes_with_more_renders_beats_random_search_and_reaches_epsilon() -> None:
    cma_small = BASELINES["cmaes"](_problem(), 30, seed=0)
    cma_large = BASELINES["cmaes"](_problem(), 300, seed=0)
    rand = BASELINES["random"](_problem(), 30, seed=0)
    assert np.median(cma_large.best_loss) < np.median(cma_small.best_loss)
    assert np.median(cma_large.best_loss) < np.median(rand.best_loss)
    reached = cma_large.renders_to_eps[cma_large.renders_to_eps > 0]
    assert len(reached) >= 2 and (reached <= 300).all()


def test_gradient_descent_lowers_the_loss() -> None:
    problem = _problem(stage=2)
    before = problem.evaluate(np.arange(4), problem.starts)
    result = BASELINES["gradient"](problem, 40, seed=0)
    assert np.median(result.best_loss) < 0.7 * np.median(before)


def test_bad_budget_and_targets_are_rejected() -> None:
    with pytest.raises(ValueError, match="budget"):
        BASELINES["cmaes"](_problem(), 0)
    with pytest.raises(ValueError, match="targets"):
        MatchProblem(np.zeros((2, 5)), 1, FakeRenderer(), FakeHearing(), 0.1)


def test_candidates_hear_their_targets_noise_whatever_the_batch_order() -> None:
    targets = held_out_presets(6, seed=4)
    targets[:, 8] = 0.5  # loud noise: position-dependent in the renderer
    problem = MatchProblem(targets, 1, FakeRenderer(), FakeHearing(), 0.01)
    rows = np.array([5, 0, 3, 3, 1, 5, 2, 4])
    losses = problem.evaluate(rows, problem.targets[rows])
    np.testing.assert_allclose(losses, 0.0, atol=1e-6)


def test_alignment_holds_with_more_targets_than_a_batch() -> None:
    targets = held_out_presets(300, seed=5)
    targets[:, 8] = 0.5
    problem = MatchProblem(targets, 1, FakeRenderer(), FakeHearing(), 0.01)
    assert problem.copies == 1
    rows = np.array([299, 0, 256, 256, 43])
    np.testing.assert_allclose(problem.evaluate(rows, problem.targets[rows]), 0.0, atol=1e-6)
