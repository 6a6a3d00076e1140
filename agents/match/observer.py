"""Observers for the matching policy: the flat MLP input, or a CNN on the (current, target) log-mel pair.

Input: the flat observation of `agents.match.layout` (batch `[B, D]`). Output: a feature vector
`[B, features_dim]` for SB3's actor and critics. `LogMelPairCNN` reshapes the first 2*F*M entries
into an image pair `[B, 2, F, M]`, runs two strided 3x3 convolutions over it and concatenates the
flattened result with the rest of the observation (deltas, parameters, stage mask, time, ...).
`policy_kwargs(observer, layout, net_arch)` gives the SB3 `policy_kwargs` for either observer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from agents.match.layout import ObservationLayout


class LogMelPairCNN(BaseFeaturesExtractor):
    def __init__(self, observation_space: gym.spaces.Box, n_frames: int, n_mels: int, features_dim: int = 256) -> None:
        super().__init__(observation_space, features_dim)
        self.n_frames, self.n_mels = n_frames, n_mels
        self.image_size = 2 * n_frames * n_mels
        rest = int(observation_space.shape[0]) - self.image_size
        if rest < 0:
            size = observation_space.shape[0]
            raise ValueError(f"observation of size {size} has no {n_frames}x{n_mels} log-mel pair")
        self.conv = torch.nn.Sequential(
            torch.nn.Conv2d(2, 16, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.Flatten(),
        )
        with torch.no_grad():
            conv_out = self.conv(torch.zeros(1, 2, n_frames, n_mels)).shape[1]
        self.head = torch.nn.Sequential(torch.nn.Linear(conv_out + rest, features_dim), torch.nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        images = observations[:, : self.image_size].reshape(-1, 2, self.n_frames, self.n_mels)
        rest = observations[:, self.image_size :]
        return self.head(torch.cat([self.conv(images), rest], dim=1))


def policy_kwargs(observer: str, layout: ObservationLayout, net_arch: Sequence[int]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"net_arch": list(net_arch), "activation_fn": torch.nn.ReLU}
    if observer == "cnn":
        kwargs["features_extractor_class"] = LogMelPairCNN
        kwargs["features_extractor_kwargs"] = {"n_frames": layout.n_frames, "n_mels": layout.n_mels}
    elif observer != "mlp":
        raise ValueError(f"match.observer must be 'mlp' or 'cnn', got {observer!r}")
    return kwargs
