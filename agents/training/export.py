"""Export a trained SB3 model's deterministic actor to the pickle-free model directory.

Input: an SB3 model (SAC, TD3, PPO, A2C, or DQN with the factored Q-network) and the metadata
of `model.yaml` (built by the task). Output: `policy.safetensors` + `model.yaml` written through
`agents.policy.write_model_dir`, with the actor as `(weight, bias)` layers and its output kind:

| algorithm | layers | output |
| --- | --- | --- |
| SAC | `actor.latent_pi` + `actor.mu` | `tanh` (SAC squashes its mean) |
| TD3 | `actor.mu` (ends in Tanh) | `tanh` |
| PPO / A2C, Box | `mlp_extractor.policy_net` + `action_net` | `clip` |
| PPO / A2C, MultiDiscrete([3]*P) | same | `updown` (per-parameter argmax of the logits) |
| DQN (factored) | `q_net.q_net` | `updown` (per-parameter argmax of the branch values) |
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm

from agents.policy import OutputKind, write_model_dir


def _linear_layers(*modules: torch.nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, torch.nn.Linear):
                weight = layer.weight.detach().cpu().numpy().astype(np.float32)
                layers.append((weight, layer.bias.detach().cpu().numpy().astype(np.float32)))
    return layers


def actor_layers(model: BaseAlgorithm) -> tuple[list[tuple[np.ndarray, np.ndarray]], OutputKind]:
    """The deterministic actor of `model` as linear layers (ReLU between them) and its output kind."""
    policy: Any = model.policy
    if isinstance(model, SAC):
        return _linear_layers(policy.actor.latent_pi, policy.actor.mu), "tanh"
    if isinstance(model, TD3):
        return _linear_layers(policy.actor.mu), "tanh"
    if isinstance(model, (PPO, A2C)):
        layers = _linear_layers(policy.mlp_extractor.policy_net, policy.action_net)
        space = model.action_space
        if isinstance(space, gym.spaces.MultiDiscrete):
            if not np.all(space.nvec == 3):
                raise ValueError(f"cannot export a MultiDiscrete policy other than up/stay/down, got {space.nvec}")
            return layers, "updown"
        if isinstance(space, gym.spaces.Box):
            return layers, "clip"
        raise ValueError(f"cannot export a {type(model).__name__} policy over {space}")
    if isinstance(model, DQN):
        return _linear_layers(policy.q_net.q_net), "updown"
    raise ValueError(f"cannot export algorithm {type(model).__name__}")


def export_model(model: BaseAlgorithm, model_dir: Path, meta: Mapping[str, Any]) -> Path:
    """Write the model directory's policy and `model.yaml` (meta gets `policy`, sizes filled in)."""
    layers, output = actor_layers(model)
    return write_model_dir(model_dir, meta, layers, activation="relu", output=output)
