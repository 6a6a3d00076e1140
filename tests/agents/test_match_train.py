"""`train.py --task match` on the test doubles: model directory, resume, curriculum, BC, CNN observer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import SAC

import agents.match.engine as engine_module
import agents.match.hearing as hearing_module
import train
from agents.match.bc import behaviour_clone, cmaes_demonstrations
from agents.match.observer import LogMelPairCNN, policy_kwargs
from agents.match.vector import PresetMatchVecEnv
from agents.policy import load_model
from settings.loader import Settings, with_overrides
from tests.agents.test_match_doubles import FakeHearing, FakeRenderer

SMALL = ["--n-envs", "4", "--learning-starts", "8", "--batch-size", "16", "--net-arch", "32", "32", "--no-progress"]


@pytest.fixture
def doubles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "ProbeRenderer", lambda settings, **_: FakeRenderer())
    monkeypatch.setattr(hearing_module, "FeaturesHearing", lambda settings: FakeHearing())


def test_train_writes_a_loadable_model_and_resumes(doubles: None, tmp_path: Path) -> None:
    out = tmp_path / "m"
    settings_file = tmp_path / "s.yaml"
    settings_file.write_text("training:\n  buffer_size: 500\n")
    args = [
        "--task",
        "match",
        "--settings",
        str(settings_file),
        "--out",
        str(out),
        "--eval-every",
        "16",
        "--checkpoint-every",
        "16",
        *SMALL,
    ]
    assert train.main([*args, "--steps", "32"]) == 0
    model = load_model(out)
    assert model.meta["task"] == "match" and model.meta["action"]["kind"] == "selector"
    obs = np.zeros(model.policy.obs_size, np.float32)
    action = model.policy.act(obs)
    assert action.shape == (14,) and np.abs(action).max() <= 1.0
    state = json.loads((out / "checkpoints" / "match_state.json").read_text())
    assert state["history"] and {"stage", "median_loss", "success_rate"} <= set(state["history"][0])
    assert (out / "report" / "curve.png").exists() and (out / "report" / "eval.json").exists()
    assert train.main([*args, "--steps", "48", "--resume"]) == 0
    assert load_model(out).meta["training_steps"] == 48


def test_train_rejects_discrete_only_algorithms_and_bad_resume(doubles: None, tmp_path: Path, capsys) -> None:
    assert train.main(["--task", "match", "--algorithm", "dqn", "--out", str(tmp_path / "x"), *SMALL]) == 2
    assert "match trains" in capsys.readouterr().err
    assert train.main(["--task", "match", "--resume", "--out", str(tmp_path / "none"), *SMALL]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_curriculum_advances_the_stage_of_new_episodes(doubles: None, tmp_path: Path) -> None:
    out = tmp_path / "c"
    settings_file = tmp_path / "s.yaml"
    settings_file.write_text(
        "match:\n  curriculum_thresholds: [10.0, 10.0, 10.0, 10.0]\n  validation_presets: 2\n"
        "training:\n  buffer_size: 500\n"
    )
    rc = train.main(
        [
            "--task",
            "match",
            "--settings",
            str(settings_file),
            "--out",
            str(out),
            "--steps",
            "32",
            "--eval-every",
            "16",
            *SMALL,
        ]
    )
    assert rc == 0
    state = json.loads((out / "checkpoints" / "match_state.json").read_text())
    assert [h["stage"] for h in state["history"]] == [1, 2, 3]  # two advances, then the final check
    assert load_model(out).meta["stage"] == 3


def test_behaviour_cloning_fits_cmaes_demonstrations() -> None:
    settings = with_overrides(Settings(), {"match.max_steps": 5})
    obs, actions, cma_loss = cmaes_demonstrations(settings, FakeRenderer(), FakeHearing(), 3, 20, stage=1)
    assert obs.shape[0] == actions.shape[0] == 15 and np.isfinite(cma_loss)
    assert np.abs(actions).max() <= 1.0
    venv = PresetMatchVecEnv(2, settings, renderer=FakeRenderer(), hearing=FakeHearing())
    model = SAC("MlpPolicy", venv, policy_kwargs={"net_arch": [32]}, seed=0, learning_starts=10)
    with torch.no_grad():
        before = float(((model.actor(torch.as_tensor(obs), deterministic=True) - torch.as_tensor(actions)) ** 2).mean())
    after = behaviour_clone(model, obs, actions, epochs=60)
    assert after < 0.5 * before


def test_cnn_observer_trains_and_rejects_unknown() -> None:
    settings = with_overrides(Settings(), {"match.max_steps": 4})
    venv = PresetMatchVecEnv(2, settings, renderer=FakeRenderer(), hearing=FakeHearing())
    kwargs = policy_kwargs("cnn", venv.engine.layout, (32,))
    model = SAC("MlpPolicy", venv, policy_kwargs=kwargs, learning_starts=4, batch_size=4, buffer_size=100, seed=0)
    assert isinstance(model.actor.features_extractor, LogMelPairCNN)
    model.learn(16)
    assert model.num_timesteps == 16
    with pytest.raises(ValueError, match="observer"):
        policy_kwargs("rnn", venv.engine.layout, (32,))
