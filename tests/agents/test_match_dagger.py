"""`python -m agents.match.dagger` on the test doubles: the oracle, the exported policy, and that a
tiny DAgger run beats holding the neutral start on held-out targets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import agents.evaluate.__main__ as evaluate_main
import agents.match.engine as engine_module
import agents.match.hearing as hearing_module
import agents.match.probe as probe_module
from agents.match.curriculum import active_mask, held_out_presets
from agents.match.dagger import ActorMLP, DaggerConfig, main, oracle_actions, train_dagger
from agents.match.engine import MatchEngine
from agents.match.refine import DEFAULT_REFINE
from agents.match.rollout import rollout
from agents.policy import load_model
from settings.loader import load_settings, with_overrides
from tests.agents.test_match_doubles import FakeHearing, FakeRenderer

TINY = DaggerConfig(
    rounds=3, episodes=48, steps=12, stages=(1, 2), n_envs=24, hidden=(64,), epochs=20, lr=3e-3, batch_size=64
)
TINY_ARGS = ["--rounds", "2", "--episodes", "8", "--steps", "4", "--n-envs", "8", "--hidden", "16", "--epochs", "1"]


@pytest.fixture
def doubles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "ProbeRenderer", lambda settings, **kwargs: FakeRenderer())
    monkeypatch.setattr(probe_module, "ProbeRenderer", lambda settings, **kwargs: FakeRenderer())
    monkeypatch.setattr(hearing_module, "FeaturesHearing", lambda settings: FakeHearing())


def _settings():
    return with_overrides(load_settings(), {"match.action_mode": "flat", "match.validation_presets": 4})


def test_oracle_moves_active_parameters_toward_the_target_at_most_delta_max() -> None:
    settings = with_overrides(_settings(), {"match.stage": 1})
    engine = MatchEngine(3, settings, renderer=FakeRenderer(), hearing=FakeHearing())
    engine.reset_rows(np.arange(3), held_out_presets(3, 7))
    action = oracle_actions(engine)
    assert action.shape == (3, 24) and np.abs(action).max() <= 1.0
    assert np.all(action[:, active_mask(1) == 0] == 0)
    full = oracle_actions(engine, label_clip=10.0)  # the whole remaining difference in delta_max units
    np.testing.assert_allclose(full, (engine.target_x - engine.x) / 0.1 * active_mask(1), atol=1e-5)
    np.testing.assert_array_equal(np.clip(full, -1, 1), action)
    for _ in range(12):  # every gap is < 1, so 10 steps of delta_max = 0.1 close it
        engine.step(oracle_actions(engine))
    np.testing.assert_allclose(engine.x, engine.target_x, atol=1e-5)
    assert np.all(engine.loss < 1e-4)


def test_exported_layers_fold_the_standardization() -> None:
    gen = np.random.default_rng(0)
    mean, std = gen.normal(size=10).astype(np.float32), gen.uniform(0.5, 2.0, 10).astype(np.float32)
    net = ActorMLP(10, 3, (8, 8), mean, std)
    obs = gen.normal(size=(5, 10)).astype(np.float32) * 3
    x = obs.astype(np.float64)
    layers = net.numpy_layers()
    for i, (w, b) in enumerate(layers):
        x = x @ w.T + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
    np.testing.assert_allclose(np.clip(x, -1, 1), net.act(obs), atol=1e-4)
    again = ActorMLP.from_layers(layers, np.zeros(10, np.float32), np.full(10, 3.0, np.float32))
    np.testing.assert_allclose(again.act(obs), net.act(obs), atol=1e-4)  # the same function, restandardized
    assert torch.allclose(again.std, torch.full((10,), 3.0))


def _random_policy(seed: int):
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(-1.0, 1.0, (len(obs), 24)).astype(np.float32)


def test_dagger_beats_the_neutral_start_and_exports_a_model_evaluate_runs(doubles: None, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    settings = _settings()
    result = train_dagger(settings, TINY)
    assert [h["round"] for h in result.history] == [0, 1, 2]
    assert result.history[0]["beta"] == 1.0 and result.history[1]["beta"] < 1.0
    assert result.pairs == 3 * 48 * 12
    targets = held_out_presets(8, settings.match.eval_seed)
    renderer, hearing = FakeRenderer(), FakeHearing()
    for stage in (1, 2):
        learned = rollout(result.net.act, targets, settings, stage, 20, renderer=renderer, hearing=hearing)
        hold = rollout(lambda o: np.zeros((len(o), 24), np.float32), targets, settings, stage, 20, renderer=renderer,
                       hearing=hearing)  # fmt: skip
        rand = rollout(_random_policy(0), targets, settings, stage, 20, renderer=renderer, hearing=hearing)
        assert np.median(learned.final_loss) < 0.5 * np.median(hold.final_loss)
        assert np.median(learned.final_loss) < 0.5 * np.median(rand.final_loss)


def test_cli_writes_a_model_that_evaluate_runs(doubles: None, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    settings_file = tmp_path / "s.yaml"
    settings_file.write_text("match:\n  validation_presets: 2\n")
    out = tmp_path / "m"
    assert main(["--settings", str(settings_file), "--out", str(out), *TINY_ARGS]) == 0
    model = load_model(out)
    assert model.meta["algorithm"] == "dagger" and model.meta["action"]["kind"] == "flat"
    assert model.meta["policy"]["output"] == "clip" and model.policy.action_size == 24
    history = json.loads((out / "report" / "eval.json").read_text())["history"]
    assert len(history) == 2 and {"s1_median_loss", "s2_median_loss", "s3_median_loss"} <= set(history[-1])
    capsys.readouterr()
    rc = evaluate_main.main(
        ["--task", "match", "--agent", str(out), "--budget", "3", "--presets", "2", "--stage", "2", "--keep", "0",
         "--json"]
    )  # fmt: skip
    assert rc == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["presets"] == 2 and metrics["stage"] == 2
    assert model.meta["refine"] == DEFAULT_REFINE.as_dict() == metrics["refine"]  # the hybrid agent by default
    more = tmp_path / "m2"
    args = ["--settings", str(settings_file), "--out", str(more), "--init", str(out), "--beta0", "0", *TINY_ARGS]
    assert main([*args, "--hidden", "8", "--no-refine"]) == 0  # the layer sizes come from the init model
    continued = load_model(more)
    assert "refine" not in continued.meta
    assert continued.policy.layer_sizes == model.policy.layer_sizes
    assert json.loads((more / "report" / "eval.json").read_text())["history"][0]["beta"] == 0.0
    assert main(["--out", str(tmp_path / "x"), "--init", str(tmp_path / "missing")]) == 2


@pytest.mark.parametrize(
    "bad", [["--rounds", "0"], ["--stages", "7"], ["--beta0", "1.5"], ["--hidden", "0"], ["--label-clip", "0.5"]]
)
def test_cli_rejects_bad_config(bad: list[str], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--out", str(tmp_path / "x"), *bad]) == 2
    assert capsys.readouterr().err.startswith("error:")
