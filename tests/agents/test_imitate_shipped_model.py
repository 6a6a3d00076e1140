"""The shipped listening agent `models/default`: small, loads pickle-free as the live server does,
and follows a sound through the real streaming synth."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agents.imitate.perform import AgentController, perform
from agents.policy import load_model
from features.names import DESCRIPTOR_NAMES, INDEX
from server.agent import LiveAgent
from settings import load_settings

MODEL = Path(__file__).resolve().parents[2] / "models" / "default"


def test_shipped_model_is_small_and_complete() -> None:
    size = sum(p.stat().st_size for p in MODEL.rglob("*") if p.is_file())
    assert size <= 5 * 1024 * 1024
    meta = load_model(MODEL).meta
    assert meta["task"] == "imitate" and meta["algorithm"] == "sac"
    assert meta["training_steps"] > 10000
    assert meta["metrics"]["train_wall_s"] <= 30 * 60
    assert set(meta["reward_descriptors"]) <= set(meta["descriptor_names"])
    assert list(meta["normalization"]) == meta["descriptor_names"]
    assert meta["output_smoothing_s"] == load_settings().server.smoothing_s  # trained as the server plays
    for name in ("curve.png", "eval.json", "eval_demo_test.json"):
        assert (MODEL / "report" / name).stat().st_size > 100


def test_shipped_model_follows_a_tone_through_the_streaming_synth() -> None:
    """A 1.5 s 220 Hz tone with a rest: the synth sounds during the tone, is silent after it,
    and the agent moves its parameters but stays inside [0, 1]."""
    settings = load_settings()
    sr = settings.features.sample_rate_hz
    t = np.arange(int(1.5 * sr)) / sr
    audio = ((t < 1.0) * 0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    agent = LiveAgent.from_dir(MODEL, DESCRIPTOR_NAMES)
    perf = perform(audio, AgentController(agent), agent.start_preset, settings)
    loud = perf.output_desc[:, INDEX["loudness_db"]]
    ticks_per_s = 1.0 / perf.tick_s
    assert np.median(loud[int(0.3 * ticks_per_s) : int(0.9 * ticks_per_s)]) > -50.0
    assert np.all(loud[int(1.3 * ticks_per_s) :] < -60.0)
    assert perf.notes_midi[int(0.5 * ticks_per_s)] == 57.0  # 220 Hz = A3
    moved = np.abs(np.diff(perf.params[:, list(agent.controlled)], axis=0)).sum()
    assert moved > 0.0 and perf.params.min() >= 0.0 and perf.params.max() <= 1.0


def test_shipped_model_is_the_merge_of_its_members() -> None:
    """`train.py --members 2` wrote it: the weights are exactly the merge of the members shipped beside it."""
    from agents.training.ensemble import merge_layers

    model = load_model(MODEL)
    ensemble = model.meta["ensemble"]
    members = [load_model(MODEL / d) for d in ensemble["dirs"]]
    assert ensemble["members"] == len(members) == 2
    assert model.meta["training_steps"] == sum(m.meta["training_steps"] for m in members)
    for (w, b), (w_m, b_m) in zip(model.policy.weights(), merge_layers([m.policy.weights() for m in members]),
                                  strict=True):  # fmt: skip
        np.testing.assert_array_equal(w, w_m)
        np.testing.assert_array_equal(b, b_m)
    for member in members:  # each member can be resumed from its last checkpoint
        assert list((member.path / "checkpoints").glob("step_*.zip"))
