"""The matching environment on the real synth and features (no doubles): registered id, checkers."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env

import agents  # noqa: F401  (registers the ids)
from agents.match.curriculum import start_vectors
from agents.match.env import ENV_ID
from agents.match.hearing import FeaturesHearing, centroid_hz, flatten_target, unflatten_target
from agents.match.probe import ProbeRenderer
from agents.match.vector import PresetMatchVectorEnv
from features.batch import analyze_frames, spectral_shape
from settings.loader import Settings, with_overrides

pytest.importorskip("features.loss", reason="features.loss.PerceptualLoss has not landed yet")


def test_registered_env_passes_the_gymnasium_checker() -> None:
    """(Both checkers run on every action mode with the fast doubles in test_match_env.py.)"""
    env = gym.make(ENV_ID, max_episode_steps=3)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*render modes.*")
        gym_check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    assert np.isfinite(obs).all() and info["stage"] == 1 and info["loss"] > 0
    truncated = False
    for _ in range(3):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert np.isfinite(reward)
    assert truncated or terminated


def test_real_vector_env_identical_patch_has_near_zero_loss() -> None:
    settings = with_overrides(Settings(), {"match.stage": 2})
    env = PresetMatchVectorEnv(2, settings)
    target = start_vectors(np.full((2, 24), 0.6, np.float32), 2)  # the start patch is the target
    env.reset(seed=0, options={"targets": target})
    assert env.engine.loss.max() < 1e-3
    _, _, terminated, _, _ = env.step(np.zeros((2, env.single_action_space.shape[0]), np.float32))
    assert terminated.all()


def test_hearing_centroid_and_loudness_agree_with_features() -> None:
    settings = Settings()
    audio = ProbeRenderer(settings)(torch.full((2, 24), 0.5))
    frames = analyze_frames(audio, 16000, settings.features)
    torch.testing.assert_close(centroid_hz(frames), spectral_shape(frames)[..., 0])
    hearing = FeaturesHearing(settings)
    heard = hearing.hear(audio)
    assert heard.logmel_db.shape[0] == 2 and heard.mfcc.shape[-1] == settings.features.n_mfcc


def test_target_cache_roundtrip_and_row_loss_match_the_features_loss() -> None:
    settings = Settings()
    hearing = FeaturesHearing(settings)
    renders = ProbeRenderer(settings)(torch.rand(3, 24))
    targets = ProbeRenderer(settings)(torch.rand(3, 24))
    prepared = hearing.loss_module.prepare_target(targets)
    back = unflatten_target(flatten_target(prepared))
    assert back.n_samples == prepared.n_samples and len(back.stft_mag) == len(settings.loss.fft_sizes)
    expected = hearing.loss_module(renders, targets).total
    torch.testing.assert_close(hearing.loss(renders, hearing.cache_targets(targets)), expected)
    rows = {k: v[[2, 0]] for k, v in hearing.cache_targets(targets).items()}
    torch.testing.assert_close(hearing.loss(renders[[2, 0]], rows), expected[[2, 0]])
