"""`python -m agents.evaluate --task match` on the test doubles: keys, artifacts, preset sources, errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import agents.match.hearing as hearing_module
import agents.match.probe as probe_module
from agents.evaluate import __main__ as evaluate_main
from agents.evaluate.match import EvaluateError, evaluate, load_targets
from agents.match.curriculum import held_out_presets
from settings.loader import Settings
from synth.presets import factory_presets, save_preset
from tests.agents.test_match_doubles import FakeHearing, FakeRenderer

SPEC_KEYS = {
    "task",
    "agent",
    "stage",
    "presets",
    "budget",
    "median_loss",
    "success_rate",
    "median_steps_to_eps",
    "wall_s",
}


@pytest.fixture
def doubles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe_module, "ProbeRenderer", lambda settings: FakeRenderer())
    monkeypatch.setattr(hearing_module, "FeaturesHearing", lambda settings: FakeHearing())


@pytest.mark.parametrize("agent", ["random", "cmaes", "gradient"])
def test_baseline_metrics_and_artifacts(agent: str, tmp_path: Path) -> None:
    targets = held_out_presets(4, seed=1)
    m = evaluate(
        agent,
        targets,
        Settings(),
        stage=2,
        budget=10,
        renderer=FakeRenderer(),
        hearing=FakeHearing(),
        out_dir=tmp_path,
        keep=2,
    )
    assert set(m) >= SPEC_KEYS
    assert m["task"] == "match" and m["presets"] == 4 and m["budget"] == 10 and m["stage"] == 2
    assert 0.0 <= m["success_rate"] <= 1.0 and np.isfinite(m["median_loss"])
    audio, rate = sf.read(tmp_path / "episode1_result.wav")
    assert rate == 16000 and len(audio) > 0
    for name in ("episode0_spectrogram.png", "episode0_trajectory.png", "episode1_target.wav"):
        assert (tmp_path / name).stat().st_size > 0


def test_cli_json_with_preset_folder(doubles: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "presets"
    folder.mkdir()
    for name, preset in list(factory_presets().items())[:2]:
        save_preset(preset, folder / f"{name}.json")
    rc = evaluate_main.main(
        [
            "--task",
            "match",
            "--agent",
            "cmaes",
            "--budget",
            "8",
            "--presets",
            str(folder),
            "--stage",
            "1",
            "--out",
            str(tmp_path / "art"),
            "--keep",
            "1",
            "--json",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= SPEC_KEYS and out["presets"] == 2 and out["agent"] == "cmaes"
    assert (tmp_path / "art" / "episode0_trajectory.png").exists()


def test_held_out_targets_by_count_are_seeded() -> None:
    a, desc = load_targets("5", Settings())
    np.testing.assert_array_equal(a, held_out_presets(5, Settings().match.eval_seed))
    assert "held-out" in desc


@pytest.mark.parametrize("presets", ["0", "no/such/folder"])
def test_bad_presets_are_rejected(presets: str) -> None:
    with pytest.raises(EvaluateError, match="--presets"):
        load_targets(presets, Settings())


def test_bad_agent_and_budget_give_one_line_errors(doubles: None, tmp_path: Path, capsys) -> None:
    assert evaluate_main.main(["--task", "match", "--agent", str(tmp_path / "nope"), "--presets", "2"]) == 2
    assert "model directory" in capsys.readouterr().err
    assert evaluate_main.main(["--task", "match", "--agent", "random", "--presets", "2", "--budget", "0"]) == 2
    assert "--budget" in capsys.readouterr().err
    from agents.evaluate.match import run

    assert run(argparse.Namespace(agent=None), Settings()) == 2


def test_empty_preset_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EvaluateError, match="no preset JSON"):
        load_targets(str(tmp_path), Settings())


def test_model_directory_agent_runs_its_policy(tmp_path: Path) -> None:
    from agents.match.engine import MatchEngine
    from agents.policy import write_model_dir

    settings = Settings()
    engine = MatchEngine(1, settings, renderer=FakeRenderer(), hearing=FakeHearing())
    rng = np.random.default_rng(0)
    obs_size, act_size = engine.layout.size, engine.codec.size
    weights = [
        (rng.normal(0, 0.05, (16, obs_size)).astype(np.float32), np.zeros(16, np.float32)),
        (rng.normal(0, 0.5, (act_size, 16)).astype(np.float32), np.zeros(act_size, np.float32)),
    ]
    meta = {
        "task": "match",
        "controlled_params": [],
        "descriptor_names": [],
        "start_preset": [0.5] * 24,
        "observation": {"size": obs_size},
        "action": {"kind": "selector", "delta_max": 0.1},
    }
    model_dir = write_model_dir(tmp_path / "model", meta, weights)
    m = evaluate(
        str(model_dir),
        held_out_presets(3, seed=2),
        settings,
        stage=1,
        budget=6,
        renderer=FakeRenderer(),
        hearing=FakeHearing(),
        out_dir=tmp_path / "art",
        keep=1,
    )
    assert set(m) >= SPEC_KEYS and m["budget"] == 6 and m["presets"] == 3
    assert m["median_best_loss"] <= m["median_loss"] + 1e-9
    assert (tmp_path / "art" / "episode0_trajectory.png").exists()
    meta["task"] = "imitate"
    write_model_dir(tmp_path / "other", meta, weights)
    with pytest.raises(EvaluateError, match="not 'match'"):
        evaluate(
            str(tmp_path / "other"),
            held_out_presets(1, seed=2),
            settings,
            stage=1,
            budget=2,
            renderer=FakeRenderer(),
            hearing=FakeHearing(),
            out_dir=None,
        )
