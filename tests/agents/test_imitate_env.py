"""SoundGym/Imitate-v0 with the test doubles: spaces, env checkers, modes, reward, note/gate, determinism."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import agents  # noqa: F401  (registers the env ids)
from agents.imitate.env import ImitateEnv, make_env
from agents.imitate.targets import load_corpus
from settings import load_settings, with_overrides
from tests.agents.test_imitate_doubles import FakeDescriber, write_fake_corpus


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_corpus(tmp_path_factory.mktemp("corpus"))


def _env(corpus_dir: Path, *, hold_in_rests: bool = True, **overrides: object) -> ImitateEnv:
    settings = with_overrides(
        load_settings(),
        {"synth.hold_while_gate_closed": hold_in_rests, **{f"imitate.{k}": v for k, v in overrides.items()}},
    )
    return ImitateEnv(settings, corpus_dir, describer=FakeDescriber())


@pytest.mark.parametrize("action", ["continuous", "discrete"])
def test_passes_both_env_checkers(corpus_dir: Path, action: str) -> None:
    env = _env(corpus_dir, action=action, history=2)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(_env(corpus_dir, action=action, history=2), warn=True)
    assert env.observation_space.shape == ((2 * 12 + 8) * 3,)
    if action == "discrete":
        assert isinstance(env.action_space, gym.spaces.MultiDiscrete)
        assert list(env.action_space.nvec) == [3] * 8


def test_registered_id_makes_the_env(corpus_dir: Path) -> None:
    env = gym.make("SoundGym/Imitate-v0", corpus=corpus_dir, describer=FakeDescriber(), max_episode_steps=5)
    env.reset(seed=0)
    steps = 0
    truncated = False
    while not truncated:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        steps += 1
    assert steps == 5


def test_time_limit_from_settings(corpus_dir: Path) -> None:
    settings = with_overrides(load_settings(), {"imitate.episode_steps": 7})
    env = make_env(settings, corpus_dir, describer=FakeDescriber())
    env.reset(seed=1)
    for i in range(7):
        *_, truncated, _ = env.step(env.action_space.sample())
        assert truncated == (i == 6)


def test_same_seed_same_trajectory(corpus_dir: Path) -> None:
    def rollout(seed: int) -> list[float]:
        env = _env(corpus_dir, mode="mixed")
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        out = [float(obs.sum())]
        for _ in range(30):
            obs, r, *_ = env.step(env.action_space.sample())
            out += [float(obs.sum()), r]
        return out

    assert rollout(3) == rollout(3)
    assert rollout(3) != rollout(4)


def test_actions_move_only_controlled_params_within_delta(corpus_dir: Path) -> None:
    env = _env(corpus_dir, hold_in_rests=False)  # the episode may start in a rest
    env.reset(seed=0)
    before = env.params.copy()
    env.step(np.ones(8, dtype=np.float32))
    diff = env.params - before
    ctrl = list(env.controlled)
    others = [i for i in range(24) if i not in ctrl]
    assert np.all(diff[others] == 0)
    assert np.all(diff[ctrl] <= 0.05 + 1e-6) and np.any(diff[ctrl] > 0.04)


def test_discrete_action_is_up_stay_down(corpus_dir: Path) -> None:
    env = _env(corpus_dir, action="discrete")
    np.testing.assert_allclose(env.decode_action(np.array([0, 1, 2, 1, 1, 1, 1, 1])), [-0.05, 0, 0.05, 0, 0, 0, 0, 0])


def test_reward_prefers_the_matching_sound(corpus_dir: Path) -> None:
    """Putting the synth on the target's own parameters gives a better reward than a far preset."""
    env = _env(corpus_dir, mode="static_random", lambda_smooth=0.0)
    env.reset(seed=0, options={"start": "preset"})
    target = env._current_target()
    pool_params_match = None
    # search the pool's presets for the one that produced the target (the double is exact)
    from agents.imitate.targets import random_presets

    rng = np.random.default_rng(0)
    candidates = random_presets(rng, 400, env.start_preset, env.controlled)
    frames = env.describer.describe(candidates, np.full(400, env._note), np.ones(400, dtype=bool))
    errors = [env.reward_fn(env.scaled(f), env.scaled(target), np.zeros(0))[1] for f in frames]
    pool_params_match = candidates[int(np.argmin(errors))]
    far = candidates[int(np.argmax(errors))]
    rewards = []
    for params in (pool_params_match, far):
        env.params = params.copy()
        _, r, *_ = env.step(np.zeros(8, dtype=np.float32))
        rewards.append(r)
    assert rewards[0] > rewards[1]


@pytest.mark.parametrize("kind", ["cubic", "linear", "prize", "squared"])
def test_reward_kind_is_used(corpus_dir: Path, kind: str) -> None:
    env = _env(corpus_dir, reward=kind, lambda_smooth=0.0)
    env.reset(seed=5)
    _, reward, _, _, info = env.step(np.zeros(8, dtype=np.float32))
    rmse = info["rmse"]
    expected = {
        "cubic": 8 * (0.5 - rmse) ** 3,
        "linear": 1 - rmse,
        "prize": 10.0 if rmse <= 0.1 else -10.0,
        "squared": 1 - 4 * rmse**2,
    }[kind]
    assert reward == pytest.approx(expected)


def test_note_and_gate_follow_the_target(corpus_dir: Path) -> None:
    """The corpus tracks are gated 34 frames on, 6 off; the env's gate follows and notes track pitch."""
    env = _env(corpus_dir, mode="corpus")
    env.reset(seed=0, options={"track": 0, "frame": 0})
    gates, notes = [], []
    for _ in range(45):
        _, _, _, _, info = env.step(np.zeros(8, dtype=np.float32))
        gates.append(info["gate"])
        notes.append(info["note_midi"])
    assert gates[:30] == [True] * 30 and not any(gates[34:39])
    track = load_corpus(corpus_dir).tracks[0]
    from features.names import INDEX

    expected_note = 69 + 12 * np.log2(track[1, INDEX["pitch_hz"]] / 440)
    assert notes[0] == pytest.approx(round(expected_note))


def test_dynamic_random_changes_target_static_does_not(corpus_dir: Path) -> None:
    def targets(mode: str) -> int:
        env = _env(corpus_dir, mode=mode, dynamic_change_prob=0.2, random_targets=8)
        env.reset(seed=2)
        seen = set()
        for _ in range(40):
            env.step(np.zeros(8, dtype=np.float32))
            seen.add(env._target.tobytes())
        return len(seen)

    assert targets("static_random") == 1
    assert targets("dynamic_random") > 1


def test_bad_settings_and_corpus_give_clear_errors(corpus_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="features_keep"):
        _env(corpus_dir, features_keep=("loudness",), features_reward=("centroid",))
    with pytest.raises(ValueError, match="corpus.analyze"):
        ImitateEnv(load_settings(), tmp_path / "nowhere", describer=FakeDescriber())
    bad = tmp_path / "bad"
    (bad / "features").mkdir(parents=True)
    (bad / "features" / "x.csv").write_text("centroid\n1\n2\n")
    with pytest.raises(ValueError, match="x.csv"):
        ImitateEnv(load_settings(), bad, describer=FakeDescriber())


def test_render_source_uses_the_real_synth(corpus_dir: Path) -> None:
    """The render source renders + analyses: louder master volume -> higher loudness, env checker passes."""
    env = ImitateEnv(with_overrides(load_settings(), {"imitate.descriptor_source": "render"}), corpus_dir)
    sb3_check_env(env, warn=True)
    env.reset(seed=0, options={"start": "preset", "mode": "corpus", "track": 0, "frame": 0})
    from features.names import INDEX

    env.params[23] = 0.2
    env.step(np.zeros(8, dtype=np.float32))
    quiet = env._agent[INDEX["loudness_db"]]
    env.params[23] = 0.9
    env.step(np.zeros(8, dtype=np.float32))
    assert env._gate and env._agent[INDEX["loudness_db"]] > quiet + 3.0


@pytest.mark.parametrize("head", ["direct", "rotate"])
def test_proxy_source_predicts_with_the_proxy(corpus_dir: Path, tmp_path: Path, head: str) -> None:
    import torch

    from agents.proxy import Proxy
    from features.names import DESCRIPTOR_NAMES, INDEX

    torch.manual_seed(0)
    names = ("loudness_db", "centroid") if head == "direct" else DESCRIPTOR_NAMES  # rotate: the chroma too
    proxy = Proxy(names, hidden=(8,), chroma_head=head)
    proxy.meta = {}
    proxy.save(tmp_path / "proxy")
    settings = with_overrides(
        load_settings(), {"imitate.descriptor_source": "proxy", "imitate.proxy_dir": str(tmp_path / "proxy")}
    )
    env = ImitateEnv(settings, corpus_dir)
    gym_check_env(env, skip_render_check=True)
    env.reset(seed=0, options={"mode": "static_random"})
    params = env.params.copy()
    expected = proxy.predict(torch.from_numpy(params[None, :]), torch.tensor([env._note])).detach().numpy()[0]
    np.testing.assert_allclose(env._agent[[INDEX[name] for name in names]], expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="nowhere"):
        ImitateEnv(with_overrides(settings, {"imitate.proxy_dir": str(tmp_path / "nowhere")}), corpus_dir)


@pytest.mark.parametrize("hold", [True, False])
def test_actions_are_not_applied_while_the_gate_is_closed(corpus_dir: Path, hold: bool) -> None:
    """`synth.hold_while_gate_closed`: in a rest (gate closed) the parameters stay where the last note left
    them, whatever the action (as in evaluation and on stage); without it every action moves them."""
    settings = with_overrides(load_settings(), {"imitate.mode": "corpus", "synth.hold_while_gate_closed": hold})
    env = ImitateEnv(settings, corpus_dir, describer=FakeDescriber())
    env.reset(seed=0, options={"track": 0, "frame": 0})
    moved_open, moved_closed = [], []
    for _ in range(45):
        gate = env._gate  # the gate the next render plays with: the one an action would apply under
        before = env.params.copy()
        env.step(np.full(8, 0.5 if len(moved_open) % 2 else -0.5, dtype=np.float32))
        moved = float(np.abs(env.params - before).sum())
        (moved_open if gate else moved_closed).append(moved)
    assert len(moved_closed) >= 4 and min(moved_open) > 0.0
    assert (max(moved_closed) == 0.0) if hold else (min(moved_closed) > 0.0)
