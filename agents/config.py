"""The `match:`, `imitate:` and `training:` sections of environment_settings.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    worker_threads: int | None = None  # vector envs: threads that render and hear a batch (None: min(2, cores))
    heap_keep_mb: int = 256  # freed memory malloc may keep (agents.match.heap; 0: glibc's defaults)
    seed: int = 0
    probe_note_off_s: float | None = 0.35  # note released here within the probe (None: held)
    observe_best_diff: bool = False  # add current-minus-best log-mel to the observation
    factory_prob: float = 0.2  # share of training targets that are factory presets
    w_bound: float = 0.1  # anti-cheat: penalty per unit of delta pushed past 0 or 1
    w_silence: float = 1.0  # anti-cheat: penalty for a silent render when the target is audible
    silence_db: float = -60.0  # loudness under which a render counts as silent
    curriculum: bool = True  # advance stages during training (validation median loss < threshold)
    curriculum_thresholds: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6)  # stages 1..4
    validation_presets: int = 16  # curriculum decisions (a stream disjoint from training and test)
    eval_presets: int = 200  # held-out test set size for `agents.evaluate --task match`
    eval_seed: int = 1234  # seed of the held-out test set
    observer: Literal["mlp", "cnn"] = "mlp"  # MLP on the flat observation, or CNN on the log-mel pair
    bc_episodes: int = 0  # behaviour-cloning warm start: CMA-ES trajectories to imitate (0: off)
    bc_budget: int = 200  # renders per CMA-ES trajectory for behaviour cloning
    bc_epochs: int = 30


@dataclass(frozen=True)
class ImitateSettings:
    mode: Literal["corpus", "static_random", "dynamic_random", "mixed"] = "corpus"
    descriptor_source: Literal["render", "proxy", "stream"] = "stream"
    features_keep: tuple[str, ...] = ("loudness", "specshape", "pitch")
    features_reward: tuple[str, ...] = ("loudness_db", "centroid", "flatness", "rolloff")
    reward: Literal["cubic", "linear", "prize", "squared"] = "cubic"
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
    reward_weights: dict[str, float] = field(default_factory=dict)  # per rewarded descriptor; missing: 1.0
    prize_threshold: float = 0.1  # `prize` reward: rmse at or below this wins the prize
    prize_value: float = 10.0
    dynamic_change_prob: float = 0.02  # dynamic_random: chance per step that the target jumps
    random_targets: int = 64  # size of the pool of random presets for static/dynamic_random targets
    window_s: float = 0.1  # render path: length of the rendered snapshot per step
    corpus_frac: float = 0.5  # mixed mode: share of corpus episodes (the rest static/dynamic random)
    proxy_dir: str = "models/proxy"  # descriptor_source: proxy reads the neural proxy from this folder


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
    gamma: float = 0.9
    buffer_size: int = 100000
    learning_starts: int = 1000
    train_freq: int = 1
    gradient_steps: int = 1
    n_steps: int = 256  # PPO / A2C rollout length
    threads: int = 1  # torch threads (the machine is shared; 1 is also deterministic)
    max_wall_s: float = 0.0  # stop training (and export) after this many seconds; 0: no limit
