"""Training infrastructure on the imitation task (test doubles, tiny budgets): every algorithm trains,
exports a pickle-free actor that acts exactly as the SB3 model, runs are deterministic for a seed,
checkpoints and reports are written, bad checkpoints give one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

import agents.imitate.train as imitate_train
import train
from agents.policy import load_model
from agents.training.algorithms import algorithm_class, check_action_space
from agents.training.callbacks import latest_checkpoint
from synth.params import PARAM_INDEX, default_vector
from tests.agents.test_imitate_doubles import FakeDescriber, write_fake_corpus

TINY = [
    "--steps", "120", "--learning-starts", "40", "--batch-size", "16", "--net-arch", "16", "16",
    "--checkpoint-every", "60", "--eval-every", "60", "--eval-episodes", "1", "--episode-steps", "30",
    "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_corpus(tmp_path_factory.mktemp("corpus"), n_tracks=2, n_frames=80)


@pytest.fixture(autouse=True)
def fake_sound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imitate_train, "make_describer", lambda *a, **k: FakeDescriber())


def _train(corpus_dir: Path, out: Path, *extra: str) -> int:
    return train.main(["--corpus", str(corpus_dir), "--out", str(out), *TINY, *extra])


@pytest.mark.parametrize(
    ("algorithm", "action"), [("sac", "continuous"), ("td3", "continuous"), ("ppo", "continuous"),
                              ("a2c", "discrete"), ("dqn", "discrete")]
)  # fmt: skip
def test_each_algorithm_trains_and_exports_an_equivalent_actor(
    corpus_dir: Path, tmp_path: Path, algorithm: str, action: str
) -> None:
    out = tmp_path / algorithm
    assert _train(corpus_dir, out, "--algorithm", algorithm, "--action", action) == 0
    loaded = load_model(out)
    meta = loaded.meta
    assert meta["task"] == "imitate" and meta["algorithm"] == algorithm
    assert meta["training_steps"] >= 120
    assert meta["action"]["kind"] == action
    assert (out / "report" / "curve.png").stat().st_size > 1000
    assert "mean_rmse" in meta["metrics"]
    assert list(meta["normalization"]) == meta["descriptor_names"]
    # the action's order is the env's (wire order), not the order the settings list them in
    assert meta["controlled_params"] == [
        "osc1_wave", "osc2_wave", "osc2_level", "unison_detune", "noise_level", "filter_cutoff",
        "filter_resonance", "master_volume",
    ]  # fmt: skip
    # the start preset: the table's defaults, the controlled parameters from the corpus's best static sound
    start = np.asarray(meta["start_preset"], dtype=np.float32)
    controlled = [PARAM_INDEX[n] for n in meta["controlled_params"]]
    others = np.setdiff1d(np.arange(start.size), controlled)
    np.testing.assert_array_equal(start[others], default_vector()[others])
    assert not np.array_equal(start[controlled], default_vector()[controlled])
    # the numpy actor acts like the SB3 model's deterministic policy
    _, ckpt = latest_checkpoint(out / "checkpoints") or (0, None)
    model = algorithm_class(algorithm).load(str(ckpt), device="cpu")
    # Adam-based algorithms train (and resume) with the fused Adam kernel; A2C keeps RMSprop
    optimizers = (
        [model.actor.optimizer, model.critic.optimizer] if algorithm in ("sac", "td3") else [model.policy.optimizer]
    )
    for opt in optimizers:
        assert bool(opt.defaults.get("fused")) == (algorithm != "a2c"), (algorithm, type(opt).__name__)
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs = rng.uniform(-1, 1, size=loaded.policy.obs_size).astype(np.float32)
        sb3_action, _ = model.predict(obs, deterministic=True)
        numpy_action = loaded.policy.act(obs).copy()
        if algorithm == "dqn":
            digits = (int(sb3_action) // 3 ** np.arange(8)) % 3
            np.testing.assert_array_equal(numpy_action, digits - 1)
        elif action == "discrete":
            np.testing.assert_array_equal(numpy_action, np.asarray(sb3_action) - 1)
        else:
            np.testing.assert_allclose(numpy_action, sb3_action, atol=1e-5)


def test_same_seed_gives_identical_weights(corpus_dir: Path, tmp_path: Path) -> None:
    assert _train(corpus_dir, tmp_path / "a", "--seed", "3") == 0
    assert _train(corpus_dir, tmp_path / "b", "--seed", "3") == 0
    assert _train(corpus_dir, tmp_path / "c", "--seed", "4") == 0
    a, b, c = (load_file(str(tmp_path / n / "policy.safetensors")) for n in "abc")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_checkpoints_every_n_steps_and_resume_continues(corpus_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    assert _train(corpus_dir, out) == 0
    names = sorted(p.name for p in (out / "checkpoints").glob("step_*.zip"))
    assert names == ["step_120.zip", "step_60.zip"]
    assert (out / "checkpoints" / "step_120_replay.pkl").exists()
    assert not (out / "checkpoints" / "step_60_replay.pkl").exists()  # only the newest buffer is kept
    # resuming a finished run with a larger budget continues from step 120
    assert train.main(["--corpus", str(corpus_dir), "--out", str(out), *TINY[2:], "--steps", "180", "--resume"]) == 0
    assert load_model(out).meta["training_steps"] == 180


def test_bad_input_gives_one_line_errors(corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _train(corpus_dir, tmp_path / "x", "--resume") == 2
    assert "no checkpoint" in capsys.readouterr().err
    ck = tmp_path / "y" / "checkpoints"
    ck.mkdir(parents=True)
    (ck / "step_50.zip").write_bytes(b"not a zip")
    assert _train(corpus_dir, tmp_path / "y", "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert "step_50.zip" in err and len(err.splitlines()) == 1
    assert _train(tmp_path / "no_corpus", tmp_path / "z") == 2
    assert "no_corpus" in capsys.readouterr().err
    assert _train(corpus_dir, tmp_path / "w", "--algorithm", "sac", "--action", "discrete") == 2
    assert train.main(["--steps", "0"]) == 2


def test_action_space_checks() -> None:
    import gymnasium as gym

    with pytest.raises(ValueError, match="continuous"):
        check_action_space("sac", gym.spaces.MultiDiscrete([3, 3]))
    with pytest.raises(ValueError, match="discrete"):
        check_action_space("dqn", gym.spaces.Box(-1, 1, (2,)))
    with pytest.raises(ValueError, match="unknown algorithm"):
        algorithm_class("reinforce")
    assert torch.get_num_threads() >= 1
