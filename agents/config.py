"""The `match:`, `imitate:` and `training:` sections of environment_settings.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class MatchSettings:
    max_steps: int = 50  # T: truncation
    epsilon: float = 0.05  # terminate when the perceptual loss falls below
    delta_max: float = 0.1  # largest per-step change of a normalized parameter
    action_mode: Literal["selector", "flat"] = "selector"
    warm_start_prob: float = 0.0  # chance of a noisy start near the target
    warm_start_noise: float = 0.1
    beta: float = 1.0  # best-so-far improvement bonus
    lambda_smooth: float = 0.01  # action smoothness penalty
    stage: int = 1  # curriculum stage 1..5
    n_envs: int = 32
    seed: int = 0


@dataclass(frozen=True)
class ImitateSettings:
    mode: Literal["corpus", "static_random", "dynamic_random", "mixed"] = "corpus"
    descriptor_source: Literal["render", "proxy"] = "render"
    features_keep: tuple[str, ...] = ("loudness", "specshape", "pitch")
    features_reward: tuple[str, ...] = ("loudness_db", "centroid", "flatness", "rolloff")
    reward: Literal["cubic", "linear", "prize"] = "cubic"
    lambda_smooth: float = 0.01
    action: Literal["continuous", "discrete"] = "continuous"
    controlled_params: tuple[str, ...] = (
        "osc1_wave",
        "osc2_wave",
        "osc2_level",
        "noise_level",
        "filter_cutoff",
        "filter_resonance",
        "unison_detune",
        "master_volume",
    )
    delta_max: float = 0.05
    history: int = 0
    episode_steps: int = 200


@dataclass(frozen=True)
class TrainingSettings:
    algorithm: Literal["sac", "ppo", "td3", "a2c", "dqn"] = "sac"
    total_steps: int = 20000
    seed: int = 0
    learning_rate: float = 3e-4
    batch_size: int = 256
    net_arch: tuple[int, ...] = (256, 256)
    checkpoint_every: int = 2000
    eval_every: int = 2000
    eval_episodes: int = 5
    device: str = "cpu"
