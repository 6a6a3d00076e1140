"""Ensembles (`train.py --members K`): the merged network computes the members' mean exactly, members
that disagree are refused by name, and a side-by-side training run writes, merges and resumes."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

import agents.training.members as members
import train
from agents.policy import ModelError, NumpyPolicy, load_model, write_model_dir
from agents.training.ensemble import check_members, merge_layers, write_ensemble
from features.names import DESCRIPTOR_NAMES
from server.agent import LiveAgent
from tests.agents.test_imitate_doubles import write_fake_corpus
from tests.test_train_cli import FLAGS, LAUNCH, ROOT

SHIPPED = ROOT / "models" / "default"


def _mlp(rng: np.random.Generator, sizes: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (rng.normal(0, 1 / np.sqrt(i), (o, i)).astype(np.float32), rng.normal(0, 0.1, o).astype(np.float32))
        for i, o in itertools.pairwise(sizes)
    ]


def _pre_activation(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    for w, b in layers[:-1]:
        x = np.maximum(x @ w.T.astype(np.float64) + b, 0.0)
    w, b = layers[-1]
    return x @ w.T.astype(np.float64) + b


@pytest.mark.parametrize("output", ["tanh", "clip", "updown"])
def test_merged_network_is_the_mean_of_the_members(output: str) -> None:
    rng = np.random.default_rng(0)
    n_out = 9 if output == "updown" else 3
    members_ = [_mlp(rng, [6, 5, 4, n_out]), _mlp(rng, [6, 7, 3, n_out]), _mlp(rng, [6, 5, 4, n_out])]
    merged = merge_layers(members_)
    assert [w.shape for w, _ in merged] == [(17, 6), (11, 17), (n_out, 11)]
    policy = NumpyPolicy(merged, output=output)  # type: ignore[arg-type]
    for _ in range(20):
        obs = rng.normal(0, 2, 6).astype(np.float32)
        mean = np.mean([_pre_activation(m, obs) for m in members_], axis=0)
        if output == "updown":
            expected = mean.reshape(3, 3).argmax(axis=1) - 1.0
        else:
            expected = np.tanh(mean) if output == "tanh" else np.clip(mean, -1, 1)
        np.testing.assert_allclose(policy.act(obs), expected, atol=1e-5)
    one = merge_layers(members_[:1])  # one member: the network itself
    for (w, b), (w0, b0) in zip(one, members_[0], strict=True):
        np.testing.assert_allclose(w, w0, atol=1e-7)
        np.testing.assert_allclose(b, b0, atol=1e-7)


def test_merge_refuses_members_of_another_shape() -> None:
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match="member 1 maps 7 -> 3 values, member 0 6 -> 3"):
        merge_layers([_mlp(rng, [6, 4, 3]), _mlp(rng, [7, 4, 3])])
    with pytest.raises(ValueError, match="member 1 has 3 layers"):
        merge_layers([_mlp(rng, [6, 4, 3]), _mlp(rng, [6, 4, 4, 3])])
    with pytest.raises(ValueError, match="at least one member"):
        merge_layers([])


def _member(dir_: Path, seed: int, rng: np.random.Generator, **changes: object) -> Path:
    meta = {k: v for k, v in load_model(SHIPPED).meta.items() if k != "policy"}
    meta["settings"] = {k: dict(v) for k, v in meta["settings"].items()}
    meta["settings"]["training"] = {**meta["settings"]["training"], "seed": seed}
    meta["metrics"] = {"mean_rmse": 0.1 + seed / 100, "train_wall_s": 100.0 + seed}
    meta["training_steps"] = 1000 + seed
    meta.update(changes)
    obs, act = int(meta["observation"]["size"]), int(meta["action"]["size"])
    return write_model_dir(dir_, meta, _mlp(rng, [obs, 16, 16, act]))


def test_write_ensemble_and_the_live_agent_runs_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    dirs = [_member(tmp_path / "members" / f"m{k}", 3 + k, rng) for k in range(2)]
    out = write_ensemble(tmp_path, dirs, wall_s=123.4)
    model = load_model(out)
    ens = model.meta["ensemble"]
    assert ens["members"] == 2 and ens["seeds"] == [3, 4] and ens["dirs"] == ["members/m0", "members/m1"]
    assert model.meta["training_steps"] == 1003 + 1004
    assert model.meta["metrics"]["train_wall_s"] == 123.4 and model.meta["metrics"]["train_cpu_s"] == 207.0
    assert model.meta["policy"]["layer_sizes"][1:] == [32, 32, model.policy.action_size]
    assert model.meta["start_preset"] == load_model(dirs[0]).meta["start_preset"]
    assert (out / "report" / "curve.png").stat().st_size > 1000
    agent = LiveAgent.from_dir(out, DESCRIPTOR_NAMES)
    layers = [load_model(d).policy.weights() for d in dirs]
    params = agent.start_preset.copy()
    for _ in range(5):  # the live observation (history included) -> tanh of the members' mean pre-activation
        mine, target = rng.normal(0, 1, (2, len(DESCRIPTOR_NAMES))).astype(np.float32)
        action = agent.act(mine, target, params).copy()
        obs = agent._obs.astype(np.float64)
        expected = np.tanh(np.mean([_pre_activation(m, obs) for m in layers], axis=0))
        np.testing.assert_allclose(action, expected, atol=1e-4)
        params = np.clip(params + 0.05, 0.0, 1.0).astype(np.float32)


def test_members_that_disagree_are_named(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    a = _member(tmp_path / "a", 0, rng)
    meta_b = load_model(SHIPPED).meta
    b = _member(tmp_path / "b", 1, rng, controlled_params=list(reversed(meta_b["controlled_params"])))
    with pytest.raises(ModelError, match=r"b/model.yaml: 'controlled_params' differs from .*a/model.yaml's"):
        check_members([load_model(a), load_model(b)])
    settings = {k: dict(v) for k, v in meta_b["settings"].items()}
    settings["imitate"]["reward"] = "linear"
    c = _member(tmp_path / "c", 2, rng, settings=settings)
    with pytest.raises(ModelError, match=r"c/model.yaml: settings 'imitate' differ"):
        check_members([load_model(a), load_model(c)])
    d = _member(tmp_path / "d", 7, rng)  # another seed alone is what members are
    check_members([load_model(a), load_model(d)])


def test_member_command_lines() -> None:
    argv = ["--corpus", "c", "--members", "2", "--out=runs/x", "--seed", "4", "--steps", "9", "--no-progress"]
    assert members.member_argv(argv, Path("runs/x"), 1, 4) == [
        "--corpus", "c", "--steps", "9", "--out", "runs/x/members/m1", "--seed", "5", "--no-progress",
    ]  # fmt: skip


@pytest.fixture
def sound_double(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(members, "LAUNCH", (sys.executable, "-c", LAUNCH))


def test_members_train_side_by_side_merge_and_resume(tmp_path: Path, sound_double: None) -> None:
    corpus = write_fake_corpus(tmp_path / "corpus", n_tracks=2, n_frames=80)
    out = tmp_path / "ens"
    base = ["--corpus", str(corpus), "--out", str(out), "--members", "2", "--seed", "5", *FLAGS]
    assert train.main([*base, "--steps", "120"]) == 0
    model = load_model(out)
    assert model.meta["ensemble"]["seeds"] == [5, 6] and model.meta["training_steps"] == 240
    firsts = [load_model(out / "members" / f"m{k}").policy.weights() for k in range(2)]
    assert not np.allclose(firsts[0][0][0], firsts[1][0][0])  # two seeds, two networks
    assert train.main([*base, "--steps", "180", "--resume"]) == 0
    assert load_model(out).meta["training_steps"] == 360
    for k in range(2):
        assert "resuming from" in (out / "members" / f"m{k}.log").read_text()


def test_a_failing_member_is_named_and_the_rest_kept(tmp_path: Path, sound_double: None,
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "ens"
    code = train.main(["--corpus", str(tmp_path / "missing"), "--out", str(out), "--members", "2", *FLAGS])
    assert code == 1
    err = capsys.readouterr().err
    assert "member 0 exited with 2" in err and "missing" in err and "member 1 exited with 2" in err
    assert not (out / "model.yaml").exists()
    with pytest.raises(SystemExit):
        train.main(["--memb", "2"])  # no abbreviations: the members' command lines are forwarded flag by flag


def test_members_flag_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert train.main(["--members", "0"]) == 2
    assert "--members must be > 0" in capsys.readouterr().err
    assert train.main(["--task", "match", "--members", "2"]) == 2
    assert "--members is for the listening agent" in capsys.readouterr().err


def test_a_member_that_cannot_start_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setattr(members, "LAUNCH", (str(tmp_path / "no-python"),))
    assert members.train_members(["--corpus", "c"], tmp_path / "ens", 2, 0) == 1
    err = capsys.readouterr().err
    assert "cannot start member 0" in err and "2 of 2 members failed" in err
    assert not (tmp_path / "ens" / "model.yaml").exists()
