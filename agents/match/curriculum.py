"""Curriculum stages and target sampling for preset matching.

Input: a stage number (1..5) and seeds. Output: which of the 24 parameters the agent controls at
that stage (`active_mask`), target presets drawn from seeded, disjoint streams (training,
validation for the curriculum's decisions, and the held-out test set that evaluation uses and
training never samples), and `Curriculum`, which advances the stage when the median validation
loss falls under the stage's threshold.

Stages (cumulative; parameters outside the stage are held at the target's values):
1. oscillator gains and mix: osc1/osc2 wave and level, noise level, master volume;
2. + filter cutoff and resonance;
3. + amp ADSR;
4. + unison voices/detune and osc2 tuning (semitones, fine);
5. + LFO routing (rate, amount, target) and the modulation path (filter env amount, mod ADSR):
   all 24 parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from synth.params import N_PARAMS, PARAM_NAMES, default_vector, indices_of, snap_vector

N_STAGES = 5

_STAGE_ADDS: tuple[tuple[str, ...], ...] = (
    ("osc1_wave", "osc1_level", "osc2_wave", "osc2_level", "noise_level", "master_volume"),
    ("filter_cutoff", "filter_resonance"),
    ("amp_attack", "amp_decay", "amp_sustain", "amp_release"),
    ("unison_voices", "unison_detune", "osc2_semitones", "osc2_fine"),
    (
        "lfo_rate",
        "lfo_amount",
        "lfo_target",
        "filter_env_amount",
        "mod_attack",
        "mod_decay",
        "mod_sustain",
        "mod_release",
    ),
)

# Uniform ranges (normalized) that random targets are drawn from: wide, but audible within a
# 0.5 s probe (no 4 s attacks, no 30 Hz cutoffs, no silent mixes).
RANDOM_RANGES_0TO1: Mapping[str, tuple[float, float]] = {
    "osc1_wave": (0.0, 1.0),
    "osc1_level": (0.3, 1.0),
    "osc2_wave": (0.0, 1.0),
    "osc2_level": (0.0, 1.0),
    "osc2_semitones": (0.25, 0.75),
    "osc2_fine": (0.0, 1.0),
    "unison_voices": (0.0, 1.0),
    "unison_detune": (0.0, 1.0),
    "noise_level": (0.0, 0.5),
    "filter_cutoff": (0.45, 1.0),
    "filter_resonance": (0.0, 0.7),
    "filter_env_amount": (0.25, 0.75),
    "amp_attack": (0.0, 0.5),
    "amp_decay": (0.2, 0.9),
    "amp_sustain": (0.2, 1.0),
    "amp_release": (0.0, 0.8),
    "mod_attack": (0.0, 0.6),
    "mod_decay": (0.2, 0.9),
    "mod_sustain": (0.0, 1.0),
    "mod_release": (0.0, 0.8),
    "lfo_rate": (0.2, 0.9),
    "lfo_amount": (0.0, 0.8),
    "lfo_target": (0.0, 1.0),
    "master_volume": (0.4, 0.9),
}

# Seed streams: the second entry of the SeedSequence keeps the three sets disjoint.
STREAM_TRAIN, STREAM_VALIDATION, STREAM_TEST = 0, 1, 2


def check_stage(stage: int) -> int:
    if not isinstance(stage, int) or not 1 <= stage <= N_STAGES:
        raise ValueError(f"curriculum stage must be an integer 1..{N_STAGES}, got {stage!r}")
    return stage


def stage_params(stage: int) -> tuple[str, ...]:
    """Names of the parameters the agent controls at `stage`, in wire order."""
    names = [n for adds in _STAGE_ADDS[: check_stage(stage)] for n in adds]
    return tuple(PARAM_NAMES[i] for i in indices_of(names))


def active_mask(stage: int) -> np.ndarray:
    """[24] float32: 1 where the agent controls the parameter at `stage`, 0 where it is held."""
    mask = np.zeros(N_PARAMS, dtype=np.float32)
    mask[list(indices_of(stage_params(stage)))] = 1.0
    return mask


def start_vectors(targets_0to1: np.ndarray, stage: int) -> np.ndarray:
    """The neutral patch on the stage's parameters, the target's values elsewhere: [B, 24]."""
    mask = active_mask(stage)
    return (mask * default_vector() + (1.0 - mask) * targets_0to1).astype(np.float32)


def random_presets(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` random presets [count, 24] (snapped), drawn from `RANDOM_RANGES_0TO1`."""
    low = np.array([RANDOM_RANGES_0TO1[n][0] for n in PARAM_NAMES], dtype=np.float64)
    high = np.array([RANDOM_RANGES_0TO1[n][1] for n in PARAM_NAMES], dtype=np.float64)
    return snap_vector(rng.uniform(low, high, size=(count, N_PARAMS)).astype(np.float32))


def held_out_presets(count: int, seed: int) -> np.ndarray:
    """The fixed test set [count, 24]: the same for a seed, never drawn by `TargetSampler`."""
    if count <= 0:
        raise ValueError(f"the held-out preset count must be > 0, got {count}")
    return random_presets(np.random.default_rng([seed, STREAM_TEST]), count)


def validation_presets(count: int, seed: int) -> np.ndarray:
    """The curriculum's validation set [count, 24] (disjoint stream from training and test)."""
    return random_presets(np.random.default_rng([seed, STREAM_VALIDATION]), count)


class TargetSampler:
    """Training targets: random presets from the training stream, plus factory presets."""

    def __init__(self, seed: int, factory_0to1: np.ndarray | None = None, factory_prob: float = 0.2) -> None:
        if not 0.0 <= factory_prob <= 1.0:
            raise ValueError(f"factory_prob must be in [0, 1], got {factory_prob}")
        self.rng = np.random.default_rng([seed, STREAM_TRAIN])
        self.factory_0to1 = (
            np.zeros((0, N_PARAMS), np.float32) if factory_0to1 is None else snap_vector(np.asarray(factory_0to1))
        )
        self.factory_prob = factory_prob if len(self.factory_0to1) else 0.0

    def sample(self, count: int) -> np.ndarray:
        """`count` targets [count, 24]."""
        out = random_presets(self.rng, count)
        use_factory = self.rng.random(count) < self.factory_prob
        if use_factory.any():
            picks = self.rng.integers(0, len(self.factory_0to1), size=int(use_factory.sum()))
            out[use_factory] = self.factory_0to1[picks]
        return out


def factory_vectors() -> np.ndarray:
    """The factory presets (`synth.presets.factory_presets`) as [P, 24]."""
    from synth.presets import factory_presets

    presets = factory_presets()
    if not presets:
        return np.zeros((0, N_PARAMS), np.float32)
    return np.stack([p.params_0to1 for p in presets.values()]).astype(np.float32)


@dataclass
class Curriculum:
    """Advances from stage to stage when the median validation loss < the stage's threshold."""

    stage: int
    thresholds: Sequence[float]  # one per stage 1..4 (stage 5 is the last)
    final_stage: int = N_STAGES

    def __post_init__(self) -> None:
        check_stage(self.stage)
        check_stage(self.final_stage)
        if len(self.thresholds) < N_STAGES - 1:
            raise ValueError(f"need {N_STAGES - 1} curriculum thresholds, got {len(self.thresholds)}")

    def update(self, median_loss: float) -> bool:
        """Record a validation result; returns True when the stage advanced."""
        if self.stage >= self.final_stage:
            return False
        if median_loss < self.thresholds[self.stage - 1]:
            self.stage += 1
            return True
        return False
