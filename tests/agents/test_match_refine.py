"""The hybrid matching agent (`agents.match.refine`): its model.yaml section, the Adam schedule, the
hand-over from policy to gradient refinement, and the evaluation CLI (test doubles)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.baselines.gradient import AdamSchedule
from agents.baselines.levenberg import LevenbergMarquardt
from agents.evaluate import __main__ as evaluate_main
from agents.evaluate.match import EvaluateError, evaluate
from agents.match.curriculum import held_out_presets
from agents.match.refine import RefineConfig, RefineError, hybrid_rollout, refine_config
from agents.match.rollout import rollout
from settings.loader import Settings, with_overrides
from tests.agents.test_match_doubles import FakeHearing, FakeRenderer


@pytest.fixture
def doubles(monkeypatch: pytest.MonkeyPatch) -> None:
    import agents.match.hearing as hearing_module
    import agents.match.probe as probe_module

    monkeypatch.setattr(probe_module, "ProbeRenderer", lambda settings: FakeRenderer())
    monkeypatch.setattr(hearing_module, "FeaturesHearing", lambda settings: FakeHearing())


def hold(obs: np.ndarray) -> np.ndarray:
    """A policy that never moves (flat actions): everything the agent gains comes from the refinement."""
    return np.zeros((len(obs), 24), np.float32)


def flat_settings(**extra: Any) -> Settings:
    return with_overrides(Settings(), {"match.action_mode": "flat", **extra})


def test_refine_section_parses_with_defaults() -> None:
    assert refine_config(None, "m/model.yaml") is None
    cfg = refine_config({"policy_steps": 4, "lr": 0.2}, "m/model.yaml")
    assert cfg == RefineConfig(policy_steps=4, lr=0.2)
    assert refine_config(cfg.as_dict(), "m/model.yaml") == cfg
    assert cfg.schedule == AdamSchedule(lr=0.2, lr_floor=cfg.lr_floor, beta1=cfg.beta1)
    assert cfg.lm is None  # Adam only unless lm_below is set
    lm_cfg = refine_config({"lm_below": 0.05, "lm_max_step": 1}, "m/model.yaml")
    assert lm_cfg is not None and lm_cfg.lm == LevenbergMarquardt(below=0.05, max_step=1.0)
    assert refine_config(lm_cfg.as_dict(), "m/model.yaml") == lm_cfg


@pytest.mark.parametrize(
    ("section", "culprit"),
    [
        ([1, 2], "'refine' must be a mapping"),
        ({"policy_step": 3}, "unknown key(s) in 'refine': policy_step"),
        ({"kind": "cmaes"}, "refine.kind 'cmaes'"),
        ({"policy_steps": 0}, "refine.policy_steps"),
        ({"policy_steps": 2.5}, "refine.policy_steps"),
        ({"lr": "fast"}, "refine.lr must be a number"),
        ({"lr_floor": 0.0}, "lr_floor"),
        ({"beta1": 1.0}, "beta1"),
        ({"proxy_starts": -1}, "refine.proxy_starts must be an integer >= 0"),
        ({"proxy_starts": 1}, "refine.proxy_starts > 0 needs refine.proxy_dir"),
        ({"proxy_starts": 1, "proxy_dir": "no_such_proxy"}, "refine.proxy_dir 'no_such_proxy' is not a folder"),
        ({"proxy_starts": 9, "proxy_candidates": 8}, "refine.proxy_starts (9) exceeds proxy_candidates"),
        ({"race_steps": 0}, "refine.race_steps must be an integer >= 1"),
        ({"proxy_stages": [1, 6]}, "refine.proxy_stages must list distinct stages 1..5"),
        ({"proxy_stages": [2, 2]}, "refine.proxy_stages must list distinct stages"),
        ({"proxy_stages": 1}, "refine.proxy_stages must list"),
        ({"lm_below": "low"}, "refine.lm_below must be a number"),
        ({"lm_below": 0.0}, "refine: Levenberg-Marquardt needs below > 0"),
        ({"lm_below": 0.1, "lm_max_step": True}, "refine.lm_max_step must be a number"),
        ({"lm_below": 0.1, "lm_lambda0": -1}, "lambda0"),
    ],
)
def test_bad_refine_sections_name_file_and_key(section: Any, culprit: str) -> None:
    with pytest.raises(RefineError) as info:
        refine_config(section, "models/x/model.yaml")
    assert "models/x/model.yaml" in str(info.value) and culprit in str(info.value)
    assert "\n" not in str(info.value)


def test_the_proxy_folder_is_found_next_to_the_model(tmp_path: Path) -> None:
    (tmp_path / "proxy").mkdir()
    (tmp_path / "agent").mkdir()
    cfg = refine_config({"proxy_starts": 2, "proxy_dir": "../proxy"}, tmp_path / "agent" / "model.yaml")
    assert cfg is not None and cfg.proxy_starts == 2 and Path(str(cfg.proxy_dir)).resolve() == tmp_path / "proxy"
    plain = refine_config({"proxy_dir": "../nowhere"}, tmp_path / "agent" / "model.yaml")  # no starts: unused
    assert plain is not None and plain.proxy_dir is None


def test_adam_schedule_decays_on_a_half_cosine() -> None:
    s = AdamSchedule(lr=0.3, lr_floor=0.1, beta1=0.8)
    rates = [s.lr_at(t, 11) for t in range(11)]
    assert rates[0] == pytest.approx(0.3) and rates[-1] == pytest.approx(0.03)
    assert rates[5] == pytest.approx(0.165) and all(a > b for a, b in itertools.pairwise(rates))
    assert AdamSchedule().lr_at(0, 5) == AdamSchedule().lr_at(4, 5) == 0.1  # the baseline: constant
    assert AdamSchedule(lr=0.2, lr_floor=0.5).lr_at(0, 1) == pytest.approx(0.2)  # one step: no division by 0
    with pytest.raises(ValueError, match="lr_floor"):
        AdamSchedule(lr_floor=1.5)


def test_the_refinement_takes_the_rest_of_the_budget_and_lowers_the_loss() -> None:
    settings = flat_settings()
    targets = held_out_presets(4, seed=3)
    renderer, hearing = FakeRenderer(), FakeHearing()
    alone = rollout(hold, targets, settings, 2, 12, renderer=renderer, hearing=hearing, keep_trajectories=2)
    cfg = RefineConfig(policy_steps=3, lr=0.3, lr_floor=0.1, beta1=0.8)
    res = hybrid_rollout(hold, targets, settings, 2, 12, cfg, renderer=renderer, hearing=hearing, keep_trajectories=2)
    assert np.median(res.final_loss) < 0.7 * np.median(alone.final_loss)
    assert (res.best_loss <= res.final_loss + 1e-6).all()
    # the first kept episode: start, 3 policy steps, 9 refinement steps (best-so-far patches)
    assert len(res.trajectories) == 2 and res.trajectories[0].shape == (1 + 12, 24)
    np.testing.assert_array_equal(res.trajectories[0][:4], alone.trajectories[0][:4])
    held = np.array([i for i in range(24) if i not in (0, 1, 2, 3, 8, 9, 10, 23)])  # stage 2's active ones
    np.testing.assert_allclose(res.final_x[:, held], targets[:, held], atol=1e-6)


def test_refinement_reports_steps_to_epsilon_over_the_whole_episode() -> None:
    targets = held_out_presets(4, seed=3)
    renderer, hearing = FakeRenderer(), FakeHearing()
    cfg = RefineConfig(policy_steps=2, lr=0.3, lr_floor=0.1, beta1=0.8)
    start_loss = rollout(hold, targets, flat_settings(), 1, 1, renderer=renderer, hearing=hearing).final_loss
    eps = float(np.median(start_loss)) * 0.5  # reachable by the refinement, not by holding
    res = hybrid_rollout(
        hold, targets, flat_settings(**{"match.epsilon": eps}), 1, 30, cfg, renderer=renderer, hearing=hearing
    )
    reached = res.steps_to_eps[res.steps_to_eps >= 0]
    assert len(reached) >= 1 and (reached > cfg.policy_steps).all() and (reached <= 30).all()
    assert (res.final_loss[res.steps_to_eps >= 0] < eps).all()


def test_episodes_solved_by_the_policy_are_not_refined(monkeypatch: pytest.MonkeyPatch) -> None:
    import agents.match.refine as refine_module

    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the refinement ran on solved episodes")

    monkeypatch.setattr(refine_module, "gradient_descent", fail)
    settings = flat_settings(**{"match.epsilon": 1e9})  # every episode ends at its first step
    targets = held_out_presets(3, seed=5)
    renderer, hearing = FakeRenderer(), FakeHearing()
    res = hybrid_rollout(
        hold, targets, settings, 1, 10, RefineConfig(policy_steps=2), renderer=renderer, hearing=hearing
    )
    assert (res.steps_to_eps == 1).all()
    short = hybrid_rollout(  # a budget within the policy's steps: the policy alone
        hold, targets, flat_settings(), 1, 2, RefineConfig(policy_steps=5), renderer=renderer, hearing=hearing
    )
    assert len(short.final_loss) == 3
    with pytest.raises(ValueError, match="budget"):
        hybrid_rollout(hold, targets, settings, 1, 0, RefineConfig(), renderer=renderer, hearing=hearing)


def test_the_race_runs_only_at_its_stages_and_within_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import agents.match.refine as refine_module

    asked: list[int] = []

    def starts(config: RefineConfig, problem: Any, settings: Settings, seed: int, audio: Any) -> np.ndarray:
        assert len(audio) == problem.n_targets
        asked.append(problem.stage)
        return problem.targets[:, None].copy()  # a start on the target: the race must pick it

    monkeypatch.setattr(refine_module, "_proxy_starts", starts)
    settings = flat_settings(**{"match.epsilon": 1e-4})
    targets = held_out_presets(3, seed=5)
    renderer, hearing = FakeRenderer(), FakeHearing()
    cfg = RefineConfig(policy_steps=2, proxy_starts=1, proxy_dir="p", race_steps=3, proxy_stages=(2,))
    raced = hybrid_rollout(hold, targets, settings, 2, 14, cfg, renderer=renderer, hearing=hearing)
    assert asked == [2] and (raced.final_loss < 1e-4).all()
    assert ((raced.steps_to_eps > 2) & (raced.steps_to_eps <= 2 + 6)).all()  # found in the race
    plain = hybrid_rollout(hold, targets, settings, 1, 14, cfg, renderer=renderer, hearing=hearing)
    short = hybrid_rollout(hold, targets, settings, 2, 8, cfg, renderer=renderer, hearing=hearing)  # 2 * 3 >= 6
    assert asked == [2] and (plain.final_loss > 1e-4).all() and (short.final_loss > 1e-4).all()


def _wave_net_dir(folder: Path, stages: tuple[int, ...] = (1, 2, 3)) -> Path:
    import torch

    from agents.match.wave_net import SpectrumSettings, WaveNet, save_wave_net

    spectrum = SpectrumSettings(n_fft=256, hop=128, start_s=0.0, end_s=0.2)  # the doubles' 0.25 s probe
    net = WaveNet(spectrum.n_bins + 1, (8,), 4)
    with torch.no_grad():  # whatever it hears: osc1 in bin 3 (0.875), osc2 in bin 1 (0.375)
        net.waves.weight.zero_()
        net.waves.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 4.0, 0.0, 4.0, 0.0, 0.0]))
    save_wave_net(folder, net, spectrum, stages, {})
    return folder


def test_the_wave_net_folder_is_read_and_checked_against_its_stages(tmp_path: Path) -> None:
    _wave_net_dir(tmp_path / "wave_net", stages=(1, 2))
    path = tmp_path / "model.yaml"
    cfg = refine_config({"wave_net_dir": "wave_net", "wave_net_stages": [2, 1]}, path)
    assert cfg is not None and cfg.wave_net_stages == (1, 2)
    assert Path(str(cfg.wave_net_dir)).resolve() == tmp_path / "wave_net"
    assert refine_config(cfg.as_dict() | {"wave_net_dir": "wave_net"}, path) == cfg
    assert [cfg.extra_starts(s) for s in (1, 2, 3)] == [1, 1, 0]
    for section, culprit in (
        ({"wave_net_dir": "wave_net"}, "include stage(s) [3] the wave net was not trained for"),
        ({"wave_net_dir": "nowhere"}, "refine.wave_net_dir: "),
        ({"wave_net_dir": 3}, "refine.wave_net_dir must be a folder name"),
        ({"wave_net_stages": [0]}, "refine.wave_net_stages must list distinct stages"),
    ):
        with pytest.raises(RefineError) as info:
            refine_config(section, path)
        assert culprit in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_the_wave_nets_start_races_first_beside_the_proxys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import agents.match.refine as refine_module
    from agents.baselines.common import MatchProblem

    def proxy(config: RefineConfig, problem: Any, settings: Settings, seed: int, audio: Any) -> np.ndarray:
        return np.full((problem.n_targets, config.proxy_starts, 24), 0.25, np.float32)

    monkeypatch.setattr(refine_module, "_proxy_starts", proxy)
    cfg = RefineConfig(proxy_starts=1, proxy_dir="p", wave_net_dir=str(_wave_net_dir(tmp_path / "wn")))
    targets = held_out_presets(3, seed=2)
    problem = MatchProblem(targets, 2, FakeRenderer(), FakeHearing(), 0.05)
    problem.starts = targets.copy()
    starts = refine_module._race_starts(cfg, problem, flat_settings(), 2, 0)
    assert starts.shape == (3, 2, 24) and (starts[:, 1] == 0.25).all()
    np.testing.assert_allclose(starts[:, 0, [0, 2]], np.tile([0.875, 0.375], (3, 1)))
    np.testing.assert_array_equal(starts[:, 0, 3:], targets[:, 3:])
    only_proxy = refine_module._race_starts(cfg, problem, flat_settings(), 4, 0)  # the net's stages: 1-3
    assert only_proxy.shape == (3, 1, 24) and cfg.extra_starts(4) == 1 and cfg.extra_starts(2) == 2
    with pytest.raises(RefineError, match="trained on 16000 Hz probes, these are 44100 Hz"):
        refine_module._race_starts(cfg, problem, flat_settings(**{"synth.sample_rate_hz": 44100}), 2, 0)


def _model_dir(tmp_path: Path, refine: dict[str, Any] | None) -> Path:
    from agents.match.engine import MatchEngine
    from agents.policy import write_model_dir

    settings = flat_settings()
    engine = MatchEngine(1, settings, renderer=FakeRenderer(), hearing=FakeHearing())
    obs_size, act_size = engine.layout.size, engine.codec.size
    weights = [
        (np.zeros((8, obs_size), np.float32), np.zeros(8, np.float32)),
        (np.zeros((act_size, 8), np.float32), np.zeros(act_size, np.float32)),
    ]
    meta: dict[str, Any] = {
        "task": "match",
        "controlled_params": [],
        "descriptor_names": [],
        "start_preset": [0.5] * 24,
        "settings": {"match": {"action_mode": "flat", "delta_max": 0.1}},
        "observation": {"size": obs_size},
        "action": {"kind": "flat", "delta_max": 0.1},
    }
    if refine is not None:
        meta["refine"] = refine
    return write_model_dir(tmp_path / "model", meta, weights, output="clip")


def test_evaluation_runs_a_refine_model_as_the_hybrid(tmp_path: Path) -> None:
    model = _model_dir(tmp_path, {"policy_steps": 2, "lr": 0.3, "lr_floor": 0.1, "beta1": 0.8})
    kwargs: dict[str, Any] = {
        "stage": 2,
        "budget": 10,
        "renderer": FakeRenderer(),
        "hearing": FakeHearing(),
        "out_dir": None,
    }
    targets = held_out_presets(4, seed=6)
    hybrid = evaluate(str(model), targets, flat_settings(), **kwargs)
    alone = evaluate(str(model), targets, flat_settings(), refine=False, **kwargs)
    assert hybrid["refine"]["policy_steps"] == 2 and "refine" not in alone
    assert hybrid["median_loss"] < 0.8 * alone["median_loss"]


def test_cli_no_refine_and_a_bad_section(doubles: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model_dir(tmp_path, {"policy_steps": 1})
    base = ["--task", "match", "--agent", str(model), "--presets", "2", "--budget", "3", "--keep", "0", "--json"]
    assert evaluate_main.main(base) == 0
    assert json.loads(capsys.readouterr().out)["refine"]["policy_steps"] == 1
    assert evaluate_main.main([*base, "--no-refine"]) == 0
    assert "refine" not in json.loads(capsys.readouterr().out)
    bad = _model_dir(tmp_path / "bad", {"policy_steps": 1, "steps": 4})
    assert evaluate_main.main([*base[:3], str(bad), *base[4:]]) == 2
    err = capsys.readouterr().err
    assert "model.yaml" in err and "unknown key(s) in 'refine': steps" in err
    with pytest.raises(EvaluateError, match="refine"):
        evaluate(
            str(bad),
            held_out_presets(1, seed=1),
            flat_settings(),
            stage=1,
            budget=2,
            renderer=FakeRenderer(),
            hearing=FakeHearing(),
            out_dir=None,
        )


def test_no_config_is_the_policy_alone() -> None:
    targets = held_out_presets(3, seed=7)
    settings, renderer, hearing = flat_settings(), FakeRenderer(), FakeHearing()
    alone = rollout(hold, targets, settings, 2, 6, renderer=renderer, hearing=hearing)
    same = hybrid_rollout(hold, targets, settings, 2, 6, None, renderer=renderer, hearing=hearing)
    np.testing.assert_array_equal(same.final_loss, alone.final_loss)
    np.testing.assert_array_equal(same.final_x, alone.final_x)
