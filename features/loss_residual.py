"""Residuals of the multi-resolution STFT loss, for least-squares solvers (Levenberg-Marquardt).

Input: renders `Tensor[B, N]` and a target prepared once by `MRSTFTResidual.prepare` (`ResidualTarget`).
Output: residual vectors `Tensor[B, m]`, zero exactly where a render equals its target, where
`features.loss.PerceptualLoss` scores 0. Per STFT resolution i of the loss's `fft_sizes` (n of them,
hop size / 4, Hann), the two parts of its `mr_stft` term as residuals:

    spectral convergence   (|S| - |T|) / ||T|| / n          (its norm is the term's, over n)
    log power              (ln P - ln P_T) * 0.5 / (n * sqrt(cells))   (an L2 stand-in for the mean |d ln P|)

so that the squared norm is a smooth, squared analogue of `mr_stft`: a Gauss-Newton model of it
converges where the L1 loss's gradient steps orbit. The other loss terms (MFCC, centroid, loudness)
vanish at the same point and are left out. Always torch (`PerceptualLoss.torch_stft`): differentiable,
forward-mode AD included; prepare the target through the same path as the renders compared with it
(render it with gradients on), or the two paths' rounding leaves a residual floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from features.loss import PerceptualLoss
from features.loss_analysis import LOG_FLOOR_POWER, SQRT_EPS, power


@dataclass(frozen=True)
class ResidualTarget:
    """A target's STFT magnitudes, log powers and norms per resolution (leading dim B)."""

    magnitude: tuple[torch.Tensor, ...]  # [B, frames, bins]
    log_power: tuple[torch.Tensor, ...]  # ln(power + floor)
    norm: tuple[torch.Tensor, ...]  # [B] sqrt(sum of squared magnitudes + floor)


class MRSTFTResidual:
    """Residual vectors of `loss`'s multi-resolution STFT term (its windows and `fft_sizes`)."""

    def __init__(self, loss: PerceptualLoss) -> None:
        self.loss = loss
        self.fft_sizes = tuple(loss.settings.fft_sizes)

    def _spectra(self, audio: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(magnitude, log power) per resolution of `[B, N]` audio."""
        out = []
        for size in self.fft_sizes:
            p = power(self.loss.torch_stft(audio, size))
            out.append(((p + SQRT_EPS).sqrt(), torch.log(p + LOG_FLOOR_POWER)))
        return out

    def prepare(self, target_audio: torch.Tensor) -> ResidualTarget:
        """Target audio `[B, N]` -> its `ResidualTarget` (detached)."""
        spectra = self._spectra(target_audio)
        norms = []
        for mag, _ in spectra:
            floor = mag.shape[-1] * mag.shape[-2] * LOG_FLOOR_POWER
            norms.append(torch.sqrt(mag.square().sum((-1, -2)) + floor).detach())
        return ResidualTarget(
            magnitude=tuple(m.detach() for m, _ in spectra),
            log_power=tuple(lp.detach() for _, lp in spectra),
            norm=tuple(norms),
        )

    def __call__(self, audio: torch.Tensor, target: ResidualTarget) -> torch.Tensor:
        """Renders `[B, N]` against a prepared target (batch B) -> residuals `[B, m]`."""
        n = len(self.fft_sizes)
        parts = []
        for i, (mag, log_power) in enumerate(self._spectra(audio)):
            if mag.shape != target.magnitude[i].shape:
                raise ValueError(
                    f"renders give STFT shape {tuple(mag.shape)} at size {self.fft_sizes[i]}, "
                    f"the prepared target {tuple(target.magnitude[i].shape)}"
                )
            cells = mag.shape[-1] * mag.shape[-2]
            parts.append(((mag - target.magnitude[i]) / (target.norm[i][:, None, None] * n)).flatten(1))
            parts.append(((log_power - target.log_power[i]) * (0.5 / (n * cells**0.5))).flatten(1))
        return torch.cat(parts, 1)
