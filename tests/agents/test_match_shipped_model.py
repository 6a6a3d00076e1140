"""The shipped preset-matching agent `models/match_dagger`: small, loads pickle-free, fits the real
environment's observation, and beats holding the neutral start on held-out targets (real synth)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from agents.evaluate.match import load_policy
from agents.match.curriculum import held_out_presets
from agents.match.engine import MatchEngine
from agents.match.hearing import FeaturesHearing
from agents.match.probe import ProbeRenderer
from agents.match.refine import DEFAULT_REFINE, hybrid_rollout
from agents.match.rollout import rollout
from agents.policy import load_model
from settings import load_settings, with_overrides

MODEL = Path(__file__).resolve().parents[2] / "models" / "match_dagger"


def test_shipped_match_model_is_small_and_complete() -> None:
    size = sum(p.stat().st_size for p in MODEL.rglob("*") if p.is_file())
    assert size <= 9 * 1024 * 1024  # policy 4.4 MB + wave net 3.7 MB + proxy copy
    model = load_model(MODEL)
    meta = model.meta
    assert meta["task"] == "match" and meta["algorithm"] == "dagger"
    assert meta["action"]["kind"] == "flat" and meta["policy"]["output"] == "clip"
    assert meta["settings"]["match"]["action_mode"] == "flat" and meta["stages"] == [1, 2, 3]
    assert (MODEL / "report" / "eval.json").stat().st_size > 100


def test_shipped_match_model_beats_the_neutral_start() -> None:
    torch.set_num_threads(1)
    settings = with_overrides(load_settings(), {"match.action_mode": "flat"})
    engine = MatchEngine(1, settings)
    assert load_model(MODEL).policy.obs_size == engine.layout.size
    targets = held_out_presets(4, settings.match.eval_seed)
    policy, _ = load_policy(str(MODEL), settings, 1)
    for stage in (1, 3):
        learned = rollout(policy, targets, settings, stage, 25, renderer=engine.renderer, hearing=engine.hearing)
        hold = rollout(
            lambda obs: np.zeros((len(obs), 24), np.float32),
            targets,
            settings,
            stage,
            1,
            renderer=engine.renderer,
            hearing=engine.hearing,
        )
        assert np.median(learned.final_loss) < 0.5 * np.median(hold.final_loss)


def test_shipped_match_model_is_the_hybrid_agent_and_its_refinement_helps() -> None:
    """Its model.yaml's refine section makes evaluation run the policy, then gradient refinement
    (racing a start with the waves its wave net hears, then Levenberg-Marquardt steps); on the real synth 20
    refinement steps already take the loss well under the policy's orbit."""
    torch.set_num_threads(1)
    settings = with_overrides(load_settings(), {"match.action_mode": "flat"})
    policy, config = load_policy(str(MODEL), settings, 1)
    assert config is not None and config.proxy_starts == 0 and config.race_steps == 8
    assert config.wave_net_stages == (1, 2) and config.extra_starts(1) == 1 and config.extra_starts(3) == 0
    assert config.lm is not None and config.lm.below == 10.0  # Levenberg-Marquardt once the race is decided
    assert Path(str(config.wave_net_dir)).resolve() == MODEL / "wave_net"
    assert (
        dataclasses.replace(
            config, wave_net_dir=None, wave_net_stages=(1, 2, 3), proxy_stages=(1, 2, 3, 4, 5), lm_below=None
        )
        == DEFAULT_REFINE
    )
    targets = held_out_presets(4, settings.match.eval_seed)
    renderer, hearing = ProbeRenderer(settings), FeaturesHearing(settings)
    budget = config.policy_steps + 20
    alone = rollout(policy, targets, settings, 1, budget, renderer=renderer, hearing=hearing)
    hybrid = hybrid_rollout(policy, targets, settings, 1, budget, config, renderer=renderer, hearing=hearing)
    assert np.median(hybrid.final_loss) < 0.75 * np.median(alone.final_loss)
    assert len(hybrid.trajectories[0]) == 1 + budget  # the start, then one entry per render
