"""`imitate.descriptor_source: stream`: the environment plays the live loop (`agents.imitate.perform.SynthLoop`).

The real streaming voice and extractor are used: the environment must hear exactly what
`perform` (the evaluation) plays for the same input and parameter sequence; the env checkers
pass; the held-note describer of the random targets follows the parameters; training is
deterministic for a seed.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from safetensors.numpy import load_file
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import agents.imitate.train as imitate_train
import train
from agents.imitate.env import ImitateEnv
from agents.imitate.perform import perform
from agents.imitate.sound import StreamDescriber, make_describer
from agents.policy import load_model
from features.names import DESCRIPTOR_NAMES, INDEX
from settings import load_settings, with_overrides
from synth.params import PARAM_INDEX
from tests.agents.test_imitate_doubles import FakeDescriber, write_fake_corpus

SR = 16000
HOP = 512


def _stream_settings(**imitate: object):
    overrides = {"imitate.descriptor_source": "stream", **{f"imitate.{k}": v for k, v in imitate.items()}}
    return with_overrides(load_settings(), overrides)


def _melody(seconds: float = 1.6) -> np.ndarray:
    """Two notes with a rest between them and a crescendo (float32 at SR)."""
    t = np.arange(int(seconds * SR)) / SR
    on = ((t > 0.1) & (t < 0.7)) | ((t > 0.9) & (t < 1.5))
    hz = np.where(t < 0.8, 220.0, 330.0)
    env = on * (0.05 + 0.25 * t / seconds)
    return (env * np.sin(2 * np.pi * np.cumsum(hz) / SR)).astype(np.float32)


class Replay:
    """A controller that plays a recorded parameter sequence: tick t renders with `seq[t]`."""

    def __init__(self, seq: np.ndarray) -> None:
        self.seq = seq
        self.t = 0

    def reset(self, params_0to1: np.ndarray) -> None:
        self.t = 0
        params_0to1[:] = self.seq[0]

    def step(self, agent_all: np.ndarray, target_all: np.ndarray, params_0to1: np.ndarray) -> None:
        self.t += 1
        params_0to1[:] = self.seq[min(self.t, len(self.seq) - 1)]


@pytest.fixture(scope="module")
def stream_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A one-track corpus whose frames are the streaming analysis of `_melody` (what `perform` hears)."""
    audio = _melody()
    settings = load_settings()
    frames = perform(audio, Replay(np.zeros((1, 24), np.float32)), np.zeros(24, np.float32), settings).input_desc
    root = tmp_path_factory.mktemp("stream_corpus")
    (root / "features").mkdir()
    with (root / "features" / "melody.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["time_s", *DESCRIPTOR_NAMES])
        for i, row in enumerate(frames):
            writer.writerow([repr(i * HOP / SR), *(repr(float(v)) for v in row)])
    return root, audio


def test_stream_env_hears_what_perform_plays(stream_corpus: tuple[Path, np.ndarray]) -> None:
    root, audio = stream_corpus
    settings = _stream_settings(delta_max=0.1)
    env = ImitateEnv(settings, root, describer=FakeDescriber())
    _, info = env.reset(seed=0, options={"mode": "corpus", "track": 0, "frame": 0, "start": "preset"})
    n_ticks = len(audio) // HOP
    rng = np.random.default_rng(1)
    params, agent, targets = [env.params.copy()], [env.agent_descriptors], [env.target_descriptors]
    played = [env.loop.played.copy()]  # the frame the voice plays (the live server's smoothed output)
    gates = [info["gate"]]
    for _ in range(n_ticks - 1):
        _, _, _, _, info = env.step(rng.uniform(-1, 1, 8).astype(np.float32))
        params.append(env.params.copy())
        played.append(env.loop.played.copy())
        agent.append(env.agent_descriptors)
        targets.append(env.target_descriptors)
        gates.append(info["gate"])
    perf = perform(audio, Replay(np.stack(params)), params[0], settings)
    np.testing.assert_array_equal(perf.params, np.stack(played))
    assert settings.server.smoothing_s > 0 and not np.array_equal(np.stack(played), np.stack(params))
    np.testing.assert_array_equal(perf.input_desc, np.stack(targets).astype(np.float32))
    np.testing.assert_array_equal(perf.gates, np.array(gates))
    np.testing.assert_array_equal(perf.output_desc, np.stack(agent).astype(np.float32))
    loud = perf.output_desc[:, INDEX["loudness_db"]]
    assert perf.gates.any() and not perf.gates.all()
    assert loud[perf.gates].mean() > loud[~perf.gates].mean() + 10.0  # it really played the notes


def test_stream_env_passes_both_env_checkers(tmp_path: Path) -> None:
    corpus = write_fake_corpus(tmp_path, n_tracks=2, n_frames=60)
    settings = _stream_settings(mode="corpus", history=1)
    env = ImitateEnv(settings, corpus, describer=FakeDescriber())
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(ImitateEnv(settings, corpus, describer=FakeDescriber()), warn=True)
    assert env.observation_space.shape == ((2 * 12 + 8) * 2,)


def test_stream_env_follows_the_parameters(tmp_path: Path) -> None:
    corpus = write_fake_corpus(tmp_path, n_tracks=1, n_frames=60)
    env = ImitateEnv(_stream_settings(), corpus, describer=FakeDescriber())
    vol = PARAM_INDEX["master_volume"]

    def mean_loudness(volume: float) -> float:
        env.reset(seed=0, options={"mode": "corpus", "track": 0, "frame": 0, "start": "preset"})
        env.params[vol] = volume
        env.loop.set_params(env.params)
        loud = []
        for _ in range(25):
            _, _, _, _, info = env.step(np.zeros(8, dtype=np.float32))
            if info["gate"]:
                loud.append(env.agent_descriptors[INDEX["loudness_db"]])
        return float(np.mean(loud))

    assert mean_loudness(0.9) > mean_loudness(0.2) + 6.0


def test_stream_describer_gives_the_held_sound() -> None:
    settings = load_settings()
    describer = make_describer("stream", settings.synth, settings.features, 0.1, settings=settings)
    assert isinstance(describer, StreamDescriber)
    params = np.tile(np.full(24, 0.5, np.float32), (3, 1))
    params[0, PARAM_INDEX["master_volume"]] = 0.2
    params[1, PARAM_INDEX["master_volume"]] = 0.9
    frames = describer.describe(params, np.array([57.0, 57.0, 57.0]), np.array([True, True, False]))
    loud = frames[:, INDEX["loudness_db"]]
    assert loud[1] > loud[0] + 6.0 and loud[2] < settings.synth.gate_off_db
    assert abs(frames[1, INDEX["pitch_hz"]] - 220.0) < 5.0
    np.testing.assert_array_equal(frames, describer.describe(params, np.full(3, 57.0), np.array([True, True, False])))
    with pytest.raises(ValueError, match="settings"):
        make_describer("stream", settings.synth, settings.features, 0.1)
    with pytest.raises(ValueError, match="stream"):
        make_describer("nope", settings.synth, settings.features, 0.1)


def test_stream_env_rejects_a_corpus_at_another_tick(tmp_path: Path) -> None:
    corpus = write_fake_corpus(tmp_path, n_tracks=1, n_frames=20)
    settings = with_overrides(_stream_settings(), {"features.hop_length": 256})
    with pytest.raises(ValueError, match="re-analyse"):
        ImitateEnv(settings, corpus, describer=FakeDescriber())


def test_stream_training_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imitate_train, "make_describer", lambda *a, **k: FakeDescriber())
    corpus = write_fake_corpus(tmp_path / "corpus", n_tracks=2, n_frames=60)
    tiny = ["--steps", "80", "--learning-starts", "30", "--batch-size", "16", "--net-arch", "16", "16",
            "--checkpoint-every", "80", "--eval-every", "80", "--eval-episodes", "1", "--episode-steps", "30",
            "--no-progress", "--descriptor-source", "stream", "--mode", "mixed"]  # fmt: skip
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert train.main(["--corpus", str(corpus), "--out", str(tmp_path / name), *tiny, "--seed", seed]) == 0
    a, b, c = (load_file(str(tmp_path / n / "policy.safetensors")) for n in "abc")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    # the model names the live output smoothing it was trained through (the live server compares it)
    assert load_model(tmp_path / "a").meta["output_smoothing_s"] == load_settings().server.smoothing_s == 0.05
