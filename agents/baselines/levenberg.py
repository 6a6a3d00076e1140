"""Levenberg-Marquardt steps on the synth's logits, for targets that gradient descent brought close.

Input: per step, the logits `z [C, k]` a chunk of targets was just rendered at and the environment's
loss of each render; the chunk's fixed parameters, renderer and prepared residual target. Output: the
logits to render next, written into `z` for the targets in the Levenberg-Marquardt phase.

Why: the perceptual loss is L1-like near a match (its minimum is sharp), so Adam's fixed-size steps
orbit the target at a distance set by the learning rate (~0.01 loss). The loss's multi-resolution STFT
term has a least-squares form (`features.loss_residual`) whose residuals vanish exactly at the match;
a Gauss-Newton model of it converges in a few steps from ~0.1 down to float32 rounding (~1e-6).

Each step costs one render of the target, as Adam's does (the protocol counts renders): the Jacobian
`d residual / d z [C, m, k]` at a rendered point comes from k forward-mode AD passes through the same
render (exact derivatives, no extra parameter points, like Adam's backward pass), ~k times the
compute of a backward pass. A target switches to these steps once its best loss is under `below`;
the usual trust-region rule follows: a render that lowers the best loss is accepted (lambda / 3, a
new Jacobian there), one that does not sends the next step back from the best point with lambda x 4.
The iterate and the Jacobian's renders are float64 (the synth's differentiable path renders in the
parameters' dtype; float32 phase accumulation alone differs by ~1e-4); each candidate is rendered
for its score with float32 parameters, as every render is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwAD

from features.loss_residual import MRSTFTResidual, ResidualTarget

LAMBDA_MAX = 1e8  # damping beyond which a step is ~0 anyway


@dataclass(frozen=True)
class LevenbergMarquardt:
    """When a target switches from Adam to Levenberg-Marquardt steps, and their damping and size."""

    below: float = 0.05  # a target's best loss under this: its next steps are LM steps
    lambda0: float = 0.01  # first damping (relative to the diagonal of J^T J)
    max_step: float = 2.0  # a step's norm is clipped to this (logit units)

    def __post_init__(self) -> None:
        if not (self.below > 0 and self.lambda0 > 0 and self.max_step > 0):
            raise ValueError(
                f"Levenberg-Marquardt needs below > 0, lambda0 > 0, max_step > 0; got below={self.below}, "
                f"lambda0={self.lambda0}, max_step={self.max_step}"
            )


def place(fixed: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`fixed [C, 24]` with columns `index` replaced by `values [C, k]` (out of place: dual tensors pass)."""
    columns = list(fixed.unbind(1))
    for c, i in enumerate(index.tolist()):
        columns[i] = values[:, c].to(fixed.dtype)
    return torch.stack(columns, 1)


def jacobian(
    render: Callable[[torch.Tensor], torch.Tensor],
    residual: MRSTFTResidual,
    target: ResidualTarget,
    z: torch.Tensor,
    fixed: torch.Tensor,
    index: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Residuals `[C, m]` at parameters `place(fixed, index, sigmoid(z))` and their Jacobian `[C, m, k]`
    in z, one forward-mode pass per column. The renders take the differentiable path (z requires grad)."""
    columns: list[torch.Tensor] = []
    values = torch.empty(0)
    base = z.detach().clone().requires_grad_(True)
    for j in range(z.shape[1]):
        tangent = torch.zeros_like(base)
        tangent[:, j] = 1.0
        with fwAD.dual_level():
            dual = fwAD.make_dual(base, tangent)
            out = fwAD.unpack_dual(residual(render(place(fixed, index, torch.sigmoid(dual))), target))
            if out.tangent is None:
                raise RuntimeError("the renderer broke the forward-mode derivative (a non-differentiable path)")
            columns.append(out.tangent.detach())
            values = out.primal.detach()
    return values, torch.stack(columns, -1)


def lm_step(residuals: torch.Tensor, jac: torch.Tensor, damping: torch.Tensor) -> torch.Tensor:
    """The damped Gauss-Newton step `[C, k]` (float64): solve (J^T J + lambda diag(J^T J)) d = -J^T r."""
    j64 = jac.double()
    jtj = j64.transpose(1, 2) @ j64
    grad = (j64.transpose(1, 2) @ residuals.double()[..., None])[..., 0]
    diag = torch.diagonal(jtj, dim1=1, dim2=2)
    ridge = damping.double()[:, None] * diag + 1e-12 * diag.sum(1, keepdim=True) + 1e-30
    return -torch.linalg.solve(jtj + torch.diag_embed(ridge), grad)


class LMPhase:
    """Per-target state of one chunk: best point, damping, Jacobian there; which targets are in the phase."""

    def __init__(
        self,
        config: LevenbergMarquardt,
        render: Callable[[torch.Tensor], torch.Tensor],
        residual: MRSTFTResidual,
        target: ResidualTarget,
        fixed: torch.Tensor,
        index: torch.Tensor,
    ) -> None:
        self.config, self.render, self.residual, self.target = config, render, residual, target
        self.fixed, self.index = fixed.double(), index
        n_rows = fixed.shape[0]
        self.active = torch.zeros(n_rows, dtype=torch.bool)
        self.best_loss = torch.full((n_rows,), float("inf"), dtype=torch.float64)
        self.best_z = torch.zeros(n_rows, index.numel(), dtype=torch.float64)
        self.next_z = torch.zeros(n_rows, index.numel(), dtype=torch.float64)
        self.damping = torch.full((n_rows,), config.lambda0, dtype=torch.float64)
        self.residuals: torch.Tensor | None = None  # at best_z, rows of active targets
        self.jac: torch.Tensor | None = None
        self.has_jac = torch.zeros(n_rows, dtype=torch.bool)

    def candidates(self, z: torch.Tensor) -> torch.Tensor:
        """The float64 logits to render now: the active targets' proposals, the others' `z`."""
        return torch.where(self.active[:, None], self.next_z, z.detach().double())

    def step(self, rendered_z: torch.Tensor, losses: torch.Tensor, z: torch.Tensor) -> None:
        """`rendered_z` (float64) was rendered with `losses` [C] (the environment's, for active targets);
        propose the next point of every active target (float64; `z` gets it too, in place)."""
        improved = losses.double() < self.best_loss
        self.best_z[improved] = rendered_z.detach().double()[improved]
        self.best_loss = torch.minimum(self.best_loss, losses.double())
        was_active = self.active.clone()
        self.active |= self.best_loss < self.config.below
        if not self.active.any():
            return
        grow = was_active & improved
        shrink = was_active & ~improved
        self.damping[grow] /= 3.0
        self.damping[shrink] = (self.damping[shrink] * 4.0).clamp(max=LAMBDA_MAX)
        need = self.active & (improved | ~self.has_jac)
        if need.any():
            residuals, jac = jacobian(self.render, self.residual, self.target, self.best_z, self.fixed, self.index)
            if self.residuals is None or self.jac is None:
                self.residuals, self.jac = residuals, jac
            else:
                self.residuals[need], self.jac[need] = residuals[need], jac[need]
            self.has_jac |= need
        assert self.residuals is not None and self.jac is not None  # computed above for every active row
        rows = self.active
        delta = lm_step(self.residuals[rows], self.jac[rows], self.damping[rows])
        norm = delta.norm(dim=1, keepdim=True).clamp_min(1e-20)
        delta = delta * torch.clamp(self.config.max_step / norm, max=1.0)
        self.next_z[rows] = self.best_z[rows] + delta
        with torch.no_grad():
            z[rows] = self.next_z[rows].to(z.dtype)
