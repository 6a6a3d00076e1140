"""agents.baselines.levenberg: forward-mode Jacobians, the damped step, and the phase on the real synth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.baselines import MatchProblem
from agents.baselines.gradient import AdamSchedule, gradient_descent
from agents.baselines.levenberg import LevenbergMarquardt, jacobian, lm_step, place
from agents.match.curriculum import active_mask, held_out_presets
from agents.match.hearing import FeaturesHearing
from agents.match.probe import ProbeRenderer
from features.loss_residual import MRSTFTResidual
from settings.loader import Settings
from synth.params import DISCRETE_INDICES
from tests.agents.test_match_doubles import FakeHearing, FakeRenderer

SCHEDULE = AdamSchedule(lr=0.3, lr_floor=0.05, beta1=0.8)


def _trainable(stage: int) -> np.ndarray:
    return np.array([i for i in np.flatnonzero(active_mask(stage)) if i not in DISCRETE_INDICES])


def _near_problem(n: int, stage: int, offset: float) -> MatchProblem:
    """Real synth and loss; starts `offset` (normalized) off the targets on the stage's parameters."""
    settings = Settings()
    targets = held_out_presets(n, seed=11)
    problem = MatchProblem(targets, stage, ProbeRenderer(settings), FeaturesHearing(settings), 0.05)
    trainable = _trainable(stage)
    rng = np.random.default_rng(5)
    signs = rng.choice([-1.0, 1.0], (n, len(trainable)))
    problem.starts[:, trainable] = np.clip(targets[:, trainable] + offset * signs, 0.02, 0.98)
    return problem


def test_lm_step_solves_a_linear_least_squares_problem() -> None:
    rng = np.random.default_rng(0)
    jac = torch.from_numpy(rng.normal(size=(3, 40, 5)).astype(np.float32))
    r = torch.from_numpy(rng.normal(size=(3, 40)).astype(np.float32))
    step = lm_step(r, jac, torch.full((3,), 1e-9))
    for row in range(3):
        want = np.linalg.lstsq(jac[row].numpy(), -r[row].numpy(), rcond=None)[0]
        np.testing.assert_allclose(step[row].numpy(), want, rtol=1e-3, atol=1e-4)
    damped = lm_step(r, jac, torch.full((3,), 1e3))
    assert (damped.norm(dim=1) < 0.01 * step.norm(dim=1)).all()  # heavy damping: a short gradient step


def test_forward_mode_jacobian_matches_finite_differences() -> None:
    problem = _near_problem(2, 1, 0.03)
    residual = MRSTFTResidual(problem.hearing.loss_module)
    target = residual.prepare(problem.renderer(torch.from_numpy(problem.targets).requires_grad_(True)))
    index = torch.from_numpy(_trainable(1))
    fixed = torch.from_numpy(problem.starts)
    x = problem.starts[:, index.numpy()]
    z = torch.tensor(np.log(x / (1 - x)), dtype=torch.float64).float()
    r, jac = jacobian(problem.renderer, residual, target, z, fixed, index)
    assert jac.shape == (2, r.shape[1], len(index))
    h = 1e-2
    for j in (0, 1):  # osc1's wave and level
        dz = torch.zeros_like(z)
        dz[:, j] = h
        with torch.no_grad():
            plus = residual(problem.renderer(place(fixed, index, torch.sigmoid(z + dz)).requires_grad_(True)), target)
            minus = residual(problem.renderer(place(fixed, index, torch.sigmoid(z - dz)).requires_grad_(True)), target)
        fd = (plus - minus) / (2 * h)
        for row in range(2):
            cos = torch.nn.functional.cosine_similarity(fd[row], jac[row, :, j], dim=0)
            assert cos > 0.99
            assert float(jac[row, :, j].norm()) == pytest.approx(float(fd[row].norm()), rel=0.05)


def test_the_phase_converges_where_adam_orbits_and_scores_with_the_environments_loss() -> None:
    adam = gradient_descent(_near_problem(3, 1, 0.02), 8, schedule=SCHEDULE)
    problem = _near_problem(3, 1, 0.02)
    lm = gradient_descent(problem, 8, schedule=SCHEDULE, lm=LevenbergMarquardt(below=10.0))
    assert (lm.renders == 8).all() and problem.renders == 8 * 3
    assert np.median(adam.best_loss) > 3e-3
    assert (lm.best_loss < 1e-4).all()
    assert (lm.best_loss < 0.05 * adam.best_loss).all()
    with torch.no_grad():  # the recorded loss is what the environment says of the best patch
        cache = problem.hearing.cache_targets(problem.renderer(torch.from_numpy(problem.targets)))
        again = problem.hearing.loss(problem.renderer(torch.from_numpy(lm.best_x)), cache).numpy()
    np.testing.assert_allclose(again, lm.best_loss, rtol=1e-3, atol=1e-8)
    held = ~active_mask(1).astype(bool)
    np.testing.assert_array_equal(lm.best_x[:, held], problem.targets[:, held])


def test_targets_stay_with_adam_until_under_the_threshold() -> None:
    far = _near_problem(2, 2, 0.25)
    adam = gradient_descent(far, 3, schedule=SCHEDULE)
    far_lm = _near_problem(2, 2, 0.25)
    lm = gradient_descent(far_lm, 3, schedule=SCHEDULE, lm=LevenbergMarquardt(below=1e-9))
    np.testing.assert_array_equal(lm.best_loss, adam.best_loss)  # never under: exactly Adam's run


def test_config_and_hearing_are_checked() -> None:
    with pytest.raises(ValueError, match="below > 0"):
        LevenbergMarquardt(below=0.0)
    with pytest.raises(ValueError, match="max_step"):
        LevenbergMarquardt(max_step=-1.0)
    problem = MatchProblem(held_out_presets(2, seed=3), 1, FakeRenderer(), FakeHearing(), 0.05)
    with pytest.raises(TypeError, match="PerceptualLoss, got FakeHearing"):
        gradient_descent(problem, 2, lm=LevenbergMarquardt())
