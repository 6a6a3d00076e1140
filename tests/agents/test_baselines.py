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


def test_a_raced_start_at_the_target_wins_and_the_budget_holds() -> None:
    """Two starts per target race for 3 steps; the one placed on the target (with loud,
    position-dependent noise: each start must hear its own copy of the target) scores ~0 and wins."""
    from agents.baselines.gradient import AdamSchedule, gradient_descent

    targets = held_out_presets(5, seed=4)
    targets[:, 8] = 0.5
    problem = MatchProblem(targets, 1, FakeRenderer(), FakeHearing(), 1e-4)
    single = gradient_descent(MatchProblem(targets, 1, FakeRenderer(), FakeHearing(), 1e-4), 12)
    assert (single.best_loss > 1e-3).all()  # from the neutral start, 12 steps do not get there
    schedule = AdamSchedule(lr=0.3, lr_floor=0.1, beta1=0.8)
    raced = gradient_descent(problem, 12, schedule=schedule, extra_starts=targets[:, None], race_steps=3)
    assert (raced.best_loss < 1e-4).all() and (raced.renders_to_eps >= 1).all()
    assert (raced.renders_to_eps <= 6).all()  # within the race: its 6 renders per target
    assert (raced.renders == 12).all() and problem.renders == 12 * 5
    assert all(len(t) == 12 for t in raced.trajectories)  # one best-so-far entry per render


def test_the_race_winner_keeps_its_adam_state() -> None:
    import torch

    from agents.baselines.gradient import _keep_rows

    z = torch.randn(4, 3, requires_grad=True)
    optimiser = torch.optim.Adam([z], lr=0.1, betas=(0.8, 0.999))
    (z**2).sum().backward()
    optimiser.step()
    before = {k: v.clone() for k, v in optimiser.state[z].items()}
    kept, narrowed = _keep_rows(z, optimiser, torch.tensor([3, 1]))
    state = narrowed.state[kept]
    torch.testing.assert_close(kept, z.detach()[[3, 1]])
    torch.testing.assert_close(state["exp_avg"], before["exp_avg"][[3, 1]])
    torch.testing.assert_close(state["exp_avg_sq"], before["exp_avg_sq"][[3, 1]])
    assert float(state["step"]) == 1.0 and narrowed.param_groups[0]["betas"] == (0.8, 0.999)
    (kept**2).sum().backward()
    narrowed.step()  # continues from the kept moments (no re-initialisation)
    assert float(narrowed.state[kept]["step"]) == 2.0


def test_bad_races_are_rejected_with_their_values() -> None:
    from agents.baselines.gradient import gradient_descent

    problem = _problem()
    with pytest.raises(ValueError, match=r"extra_starts must have shape \[4, S, 24\]"):
        gradient_descent(problem, 10, extra_starts=np.zeros((3, 1, 24)), race_steps=2)
    with pytest.raises(ValueError, match="race_steps=5"):
        gradient_descent(problem, 10, extra_starts=problem.starts[:, None], race_steps=5)  # 2 * 5 >= 10
    with pytest.raises(ValueError, match="race_steps=0"):
        gradient_descent(problem, 10, extra_starts=problem.starts[:, None], race_steps=0)
