"""The neural proxy: an MLP standing in for render + analyze (seed: synth-proxy).

Input: normalized Serum-lite parameters [B, 24] (wire order) and MIDI notes [B].
Output: the per-frame mean descriptors of a probe render [B, K] (`descriptor_names`, units of
`features`: dB, Hz ...), the same quantity `synth.lookup_store.describe_params` computes by
rendering and analyzing; or the z-normalized version (`predict_normalized`) the network learns.
Which probe and which frames is recorded in `meta["target"]` (`probe_s`, `summary_frames`: the
shipped proxy predicts the imitation environment's snapshot, the mean of the last 2 frames of a
0.1 s render). Differentiable in the parameters, so the environment can use it as a fast stand-in.

Saved pickle-free in a folder: `proxy.safetensors` (the linear layers as `net.<i>.weight/bias`,
plus `out_mean` / `out_std`) and `proxy.yaml` (layer sizes, names, input encoding, training
facts and metrics). `Proxy.load(dir)` reads them with `safetensors`, never `torch.load`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from synth.params import N_PARAMS, PARAM_INDEX, PARAM_NAMES, PARAM_TABLE_VERSION

FORMAT_VERSION = 2
WEIGHTS_FILE = "proxy.safetensors"
META_FILE = "proxy.yaml"
NOTE_CENTER = 60.0  # the note enters as (note - NOTE_CENTER) / NOTE_SCALE
NOTE_SCALE = 24.0


_OSC2_SEMIS = PARAM_INDEX["osc2_semitones"]
_OSC2_FINE = PARAM_INDEX["osc2_fine"]
N_INPUTS = N_PARAMS + 1 + 12 + 12
FAST_CHUNK_ROWS = 512  # rows per block on the no-grad path: a [512, 256] float32 activation stays in L2
NUMPY_MAX_ROWS = 8  # no-grad batches up to this size go through numpy (torch's per-op overhead dominates)


def pitch_class(notes: Tensor) -> Tensor:
    """[B] MIDI notes -> [B, 12] weights of the pitch classes C..B (1 at an integer note, linear between)."""
    classes = torch.arange(12, dtype=notes.dtype, device=notes.device)
    d = torch.remainder(notes.unsqueeze(1) - classes, 12.0)
    return torch.relu(1.0 - torch.minimum(d, 12.0 - d))


def _pitch_class_np(notes: np.ndarray) -> np.ndarray:
    d = np.remainder(notes[:, None] - np.arange(12, dtype=np.float32), 12.0)
    return np.maximum(0.0, 1.0 - np.minimum(d, 12.0 - d)).astype(np.float32)


class ProxyError(ValueError):
    """A proxy folder that cannot be used (one line, names the file)."""


class Proxy(nn.Module):
    """MLP (params, note) -> z-normalized descriptors, with the de-normalization built in."""

    def __init__(
        self,
        descriptor_names: Sequence[str],
        hidden: Sequence[int] = (512, 512, 512),
        out_mean: Tensor | None = None,
        out_std: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.descriptor_names: tuple[str, ...] = tuple(descriptor_names)
        self.hidden: tuple[int, ...] = tuple(int(h) for h in hidden)
        k = len(self.descriptor_names)
        sizes = (N_INPUTS, *self.hidden)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.SiLU()]
        layers.append(nn.Linear(sizes[-1], k))
        self.net = nn.Sequential(*layers)
        self.register_buffer("out_mean", torch.zeros(k) if out_mean is None else out_mean.float().clone())
        self.register_buffer("out_std", torch.ones(k) if out_std is None else out_std.float().clone())
        self.meta: dict[str, Any] = {}
        self._np_layers: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._np_scale: tuple[np.ndarray, np.ndarray] = (np.ones(k, np.float32), np.zeros(k, np.float32))
        self._fused_key: tuple[int, ...] = ()
        self._fused_layers: list[tuple[Tensor, Tensor]] = []

    @staticmethod
    def encode(params_0to1: Tensor, notes: Tensor) -> Tensor:
        """[B, 24], [B] -> [B, N_INPUTS]: params in [-1, 1], the note's register, and the pitch classes
        of the note and of osc2 (soft one-hot on the circle of 12, exact at integer notes): chroma and
        the other pitch-dependent descriptors are periodic in the note, which a plain MLP learns slowly."""
        if params_0to1.ndim != 2 or params_0to1.shape[1] != N_PARAMS:
            raise ValueError(f"Proxy: params_0to1 must be [B, {N_PARAMS}], got {tuple(params_0to1.shape)}")
        if notes.ndim != 1 or notes.shape[0] != params_0to1.shape[0]:
            raise ValueError(f"Proxy: notes must be [B] with B={params_0to1.shape[0]}, got {tuple(notes.shape)}")
        notes = notes.to(params_0to1.dtype)
        register = ((notes - NOTE_CENTER) / NOTE_SCALE).unsqueeze(1)
        semis = torch.round(params_0to1[:, _OSC2_SEMIS] * 48.0) - 24.0
        fine = params_0to1[:, _OSC2_FINE] - 0.5  # +-50 cents
        return torch.cat(
            [params_0to1 * 2.0 - 1.0, register, pitch_class(notes), pitch_class(notes + semis + fine)], dim=1
        )

    def predict_normalized(self, params_0to1: Tensor, notes: Tensor) -> Tensor:
        """[B, 24], [B] -> z-normalized descriptors [B, K] (what the network is trained on)."""
        return self.net(self.encode(params_0to1.float(), notes.float()))

    def forward(self, params_0to1: Tensor, notes: Tensor) -> Tensor:
        if not torch.is_grad_enabled():
            return self._predict_no_grad(params_0to1, notes)
        return self.predict_normalized(params_0to1, notes) * self.out_std + self.out_mean

    def _fused(self) -> list[tuple[Tensor, Tensor]]:
        """(weight [in, out], bias) per layer with the de-normalization folded into the last one.

        Rebuilt whenever a parameter or buffer changed (in-place updates bump tensor versions)."""
        tensors = [*self.parameters(), *self.buffers()]
        key = tuple(v for t in tensors for v in (id(t), t._version))
        if key != self._fused_key:
            linears = [m for m in self.net if isinstance(m, nn.Linear)]
            with torch.no_grad():
                layers = [(m.weight.t().contiguous(), m.bias.clone()) for m in linears]
                w, b = layers[-1]
                layers[-1] = ((w * self.out_std).contiguous(), b * self.out_std + self.out_mean)
            self._fused_layers, self._fused_key = layers, key
            self.refresh_numpy()
        return self._fused_layers

    def _predict_no_grad(self, params_0to1: Tensor, notes: Tensor) -> Tensor:
        """forward() without autograd: fused de-normalization, addmm + in-place SiLU, L2-sized row blocks
        (about 1.5x the module path at batch 4096 on one core); tiny CPU batches (an environment step)
        go through `predict_numpy` (about 3.5x torch at batch 1)."""
        layers = self._fused()
        if params_0to1.shape[0] <= NUMPY_MAX_ROWS and params_0to1.device.type == "cpu" and params_0to1.ndim == 2:
            if notes.ndim != 1 or notes.shape[0] != params_0to1.shape[0]:
                self.encode(params_0to1, notes)  # raises the shape error
            small = self.predict_numpy(params_0to1.detach().float().numpy(), notes.detach().float().numpy())
            return torch.from_numpy(small)
        x = self.encode(params_0to1.float(), notes.float())
        out = torch.empty(x.shape[0], len(self.descriptor_names), dtype=x.dtype, device=x.device)
        for start in range(0, x.shape[0], FAST_CHUNK_ROWS):
            h = x[start : start + FAST_CHUNK_ROWS]
            for w, b in layers[:-1]:
                h = torch.nn.functional.silu(torch.addmm(b, h, w), inplace=True)
            w, b = layers[-1]
            torch.addmm(b, h, w, out=out[start : start + FAST_CHUNK_ROWS])
        return out

    def predict(self, params_0to1: Tensor, notes: Tensor) -> Tensor:
        """[B, 24] normalized params, [B] MIDI notes -> mean descriptors [B, K] in features' units.

        Differentiable when autograd is on; under `torch.no_grad()` / `torch.inference_mode()` it takes
        the fused fast path (same values to float rounding)."""
        return self.forward(params_0to1, notes)

    @property
    def error_scale_z(self) -> np.ndarray | None:
        """Per-descriptor scale of the proxy's own error [K] (z-units; `proxy.yaml` `error_scale_z`), or None.

        The maximum-likelihood Laplace scale (mean |prediction - truth|) on renders the proxy was not
        trained on (`agents.proxy.calibrate`). Dividing z-scored descriptors by it before an L1
        distance ranks candidates by likelihood under that error model: the descriptors the proxy
        cannot predict (chroma of noisy patches) weigh less than the ones it predicts well.
        """
        scales = self.meta.get("error_scale_z")
        if not isinstance(scales, dict):
            return None
        if set(scales) != set(self.descriptor_names):
            raise ProxyError(f"{META_FILE}: error_scale_z must name every descriptor the proxy predicts")
        out = np.array([float(scales[n]) for n in self.descriptor_names], dtype=np.float64)
        if not np.all(np.isfinite(out) & (out > 0)):
            raise ProxyError(f"{META_FILE}: error_scale_z values must be finite and positive")
        return out

    def predict_numpy(self, params_0to1: np.ndarray, notes: np.ndarray) -> np.ndarray:
        """The same prediction in numpy, without autograd: [B, 24], [B] -> [B, K] float32.

        For callers that need no gradient and call with tiny batches (an environment step), where
        torch's per-op overhead dominates. The float32 weights are cached on first use; call
        `refresh_numpy()` after changing the weights.
        """
        layers = self._np_layers if self._np_layers is not None else self.refresh_numpy()
        params = np.atleast_2d(np.asarray(params_0to1, dtype=np.float32))
        notes = np.atleast_1d(np.asarray(notes, dtype=np.float32))
        if params.shape[1] != N_PARAMS or notes.shape != (params.shape[0],):
            raise ValueError(f"Proxy: need params [B, {N_PARAMS}] and notes [B], got {params.shape}, {notes.shape}")
        semis = np.round(params[:, _OSC2_SEMIS] * 48.0) - 24.0
        osc2 = notes + semis + params[:, _OSC2_FINE] - 0.5
        x = np.concatenate(
            [
                params * 2.0 - 1.0,
                ((notes - NOTE_CENTER) / NOTE_SCALE)[:, None],
                _pitch_class_np(notes),
                _pitch_class_np(osc2),
            ],
            axis=1,
            dtype=np.float32,
        )
        for w, b in layers[:-1]:
            x = x @ w + b
            x = x / (1.0 + np.exp(-x))  # SiLU
        w, b = layers[-1]
        return (x @ w + b) * self._np_scale[0] + self._np_scale[1]

    def refresh_numpy(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Cache the weights as numpy arrays for `predict_numpy`; returns the (weight, bias) pairs."""
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        self._np_layers = [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linears]
        self._np_scale = (self.out_std.numpy().copy(), self.out_mean.numpy().copy())
        return self._np_layers

    def save(self, folder: Path, meta: dict[str, Any] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {name: t.detach().cpu().contiguous() for name, t in self.state_dict().items()}
        save_file(tensors, str(folder / WEIGHTS_FILE))
        info = (
            dict(self.meta)
            | (meta or {})
            | {
                "format_version": FORMAT_VERSION,
                "kind": "serumlite_proxy_mlp",
                "param_table_version": PARAM_TABLE_VERSION,
                "param_order": list(PARAM_NAMES),
                "descriptor_names": list(self.descriptor_names),
                "hidden": list(self.hidden),
                "activation": "silu",
                "input": f"params*2-1 (24), (note-{NOTE_CENTER:g})/{NOTE_SCALE:g}, pitch classes of note, osc2 (2x12)",
                "output": "z-normalized per-frame mean descriptors; predict() de-normalizes with out_mean/out_std",
            }
        )
        (folder / META_FILE).write_text(yaml.safe_dump(info, sort_keys=False), encoding="utf-8")
        self.meta = info

    @classmethod
    def load(cls, folder: str | Path) -> Proxy:
        folder = Path(folder)
        meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
        try:
            meta = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ProxyError(f"{meta_path}: cannot read proxy metadata ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            raise ProxyError(f"{meta_path}: not a proxy of format {FORMAT_VERSION}")
        if meta.get("param_order") != list(PARAM_NAMES):
            raise ProxyError(f"{meta_path}: parameter order differs from synth.params (table {PARAM_TABLE_VERSION})")
        try:
            tensors = load_file(str(weights_path))
        except (OSError, RuntimeError, ValueError) as exc:
            raise ProxyError(f"{weights_path}: cannot read proxy weights ({exc})") from exc
        proxy = cls(meta["descriptor_names"], meta["hidden"])
        try:
            proxy.load_state_dict(tensors)
        except RuntimeError as exc:
            raise ProxyError(f"{weights_path}: weights do not match {meta_path} ({str(exc).splitlines()[0]})") from exc
        proxy.meta = meta
        proxy.error_scale_z  # noqa: B018 -- validates the scales now, with the file's name
        proxy.eval()
        proxy.refresh_numpy()
        return proxy
