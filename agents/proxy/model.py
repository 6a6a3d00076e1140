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
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from agents.proxy.bf16 import MIN_ROWS, bf16_layers, resolve, run_chain
from agents.proxy.encoding import (
    ENVELOPE_COLUMNS,
    ENVELOPE_CONSTANTS,
    LOG_LEVEL_COLUMNS,
    LOG_LEVEL_FLOOR,
    N_ENVELOPE_INPUTS_PER_TIME,
    N_INPUTS,
    N_LOG_INPUTS,
    NOTE_CENTER,
    NOTE_SCALE,
    OSC2_FINE,
    OSC2_SEMIS,
    WAVE_COLUMNS,
    check_shapes,
    describe_io,
    envelope_inputs,
    harmonic_gains,
    log_level,
    oscillator_pitches,
    pitch_class,
    rotate_chroma,
)
from agents.proxy.kernels import assemble_rows, encode_rows, envelope_rows, silu_rows
from features.names import GROUPS
from synth.params import N_PARAMS, PARAM_NAMES, PARAM_TABLE_VERSION

FORMAT_VERSION = 2
WEIGHTS_FILE = "proxy.safetensors"
META_FILE = "proxy.yaml"
FAST_CHUNK_ROWS = 512  # rows per block on the no-grad path: a [512, 256] float32 activation stays in L2
NUMPY_MAX_ROWS = 8  # no-grad batches up to this size go through numpy (torch's per-op overhead dominates)
CHROMA_HEADS = ("direct", "rotate")
CHROMA_NAMES: tuple[str, ...] = GROUPS["chroma"]


class ProxyError(ValueError):
    """A proxy folder that cannot be used (one line, names the file)."""


def _run_float32(x: Tensor, layers: list[tuple[Tensor, Tensor]], y: Tensor) -> None:
    """x [B, n_in] -> y [B, n_out] through the fused float32 `layers`, addmm in L2-sized row blocks
    (on the CPU the SiLU is the numba kernel)."""
    cpu = x.device.type == "cpu"
    for start in range(0, x.shape[0], FAST_CHUNK_ROWS):
        h = x[start : start + FAST_CHUNK_ROWS]
        for w, b in layers[:-1]:
            h = torch.addmm(b, h, w)
            if cpu:
                silu_rows(h.numpy())
            else:
                torch.nn.functional.silu(h, inplace=True)
        w, b = layers[-1]
        torch.addmm(b, h, w, out=y[start : start + FAST_CHUNK_ROWS])


class Proxy(nn.Module):
    """MLP (params, note) -> z-normalized descriptors, with the de-normalization built in."""

    def __init__(
        self,
        descriptor_names: Sequence[str],
        hidden: Sequence[int] = (512, 512, 512),
        out_mean: Tensor | None = None,
        out_std: Tensor | None = None,
        chroma_head: str = "direct",
        log_levels: bool = False,
        envelope_times_s: Sequence[float] = (),
    ) -> None:
        super().__init__()
        self.descriptor_names: tuple[str, ...] = tuple(descriptor_names)
        self.hidden: tuple[int, ...] = tuple(int(h) for h in hidden)
        k = len(self.descriptor_names)
        self.chroma_head = chroma_head
        self._chroma_at = self._chroma_start(chroma_head)
        self.log_levels = bool(log_levels)
        self.envelope_times_s: tuple[float, ...] = tuple(float(t) for t in envelope_times_s)
        if any(not 0.0 <= t <= 60.0 for t in self.envelope_times_s):
            raise ValueError(f"Proxy: envelope_times_s must be in [0, 60] s, got {list(self.envelope_times_s)}")
        self._envelope_times = np.array(self.envelope_times_s, dtype=np.float32)
        n_envelope = N_ENVELOPE_INPUTS_PER_TIME * len(self.envelope_times_s)
        self.n_inputs = N_INPUTS + (N_LOG_INPUTS if self.log_levels else 0) + n_envelope
        self._level_columns = LOG_LEVEL_COLUMNS if self.log_levels else LOG_LEVEL_COLUMNS[:0]
        self._wave_columns = WAVE_COLUMNS if self.log_levels else WAVE_COLUMNS[:0]
        sizes = (self.n_inputs, *self.hidden)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.SiLU()]
        layers.append(nn.Linear(sizes[-1], k if self._chroma_at < 0 else k - 12 + 24))
        self.net = nn.Sequential(*layers)
        self.register_buffer("out_mean", torch.zeros(k) if out_mean is None else out_mean.float().clone())
        self.register_buffer("out_std", torch.ones(k) if out_std is None else out_std.float().clone())
        self.meta: dict[str, Any] = {}
        self._np_layers: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._np_scale: tuple[np.ndarray, np.ndarray] = (np.ones(k, np.float32), np.zeros(k, np.float32))
        self._fused_key: tuple[int, ...] = ()
        self._linears = tuple(m for m in self.net if isinstance(m, nn.Linear))
        self._fused_layers: list[tuple[Tensor, Tensor]] = []
        self._half_layers: list[tuple[Tensor, Tensor]] = []  # bfloat16 layers, z-normalized output
        self.precision = "float32"  # of the no-grad CPU path; `set_precision`

    def set_precision(self, precision: str) -> str:
        """The no-grad CPU path's layers: 'float32', 'bfloat16' or 'auto' (bfloat16 where the CPU
        multiplies it natively, `agents.proxy.bf16`); returns the precision that will run."""
        self.precision = resolve(precision)
        self._fused_key = ()
        return self.precision

    def _chroma_start(self, chroma_head: str) -> int:
        """Index of chroma_A in the output for the "rotate" head (the 12 names in a row, A..G#), -1 for "direct"."""
        if chroma_head not in CHROMA_HEADS:
            raise ValueError(f"Proxy: chroma_head must be one of {CHROMA_HEADS}, got {chroma_head!r}")
        if chroma_head == "direct":
            return -1
        names = self.descriptor_names
        start = names.index(CHROMA_NAMES[0]) if CHROMA_NAMES[0] in names else -1
        if start < 0 or names[start : start + 12] != CHROMA_NAMES:
            raise ValueError(f"Proxy: the rotate chroma head needs {', '.join(CHROMA_NAMES)} in a row in the outputs")
        return start

    def _assemble(self, y: Tensor, pitches: Tensor) -> Tensor:
        """The last layer's output [B, n_out] and `oscillator_pitches` -> [B, K] in descriptor order.

        "rotate": y holds the non-chroma outputs, then the chroma relative to the note (12) and to
        oscillator 2 (12); the chroma is their rotations into place, summed."""
        c = self._chroma_at
        if c < 0:
            return y
        k = len(self.descriptor_names)
        rel = k - 12
        chroma = rotate_chroma(y[:, rel : rel + 12], pitches[:, 0]) + rotate_chroma(y[:, rel + 12 :], pitches[:, 1])
        return torch.cat([y[:, :c], chroma, y[:, c:rel]], dim=1)

    def encode(self, params_0to1: Tensor, notes: Tensor) -> Tensor:
        """[B, 24], [B] -> [B, n_inputs]: params in [-1, 1], the note's register, and the pitch classes
        of the note and of osc2 (soft one-hot on the circle of 12, exact at integer notes): chroma and
        the other pitch-dependent descriptors are periodic in the note, which a plain MLP learns slowly;
        with `log_levels`, then the gains of LOG_LEVEL_NAMES on a log scale (`log_level`); with
        `envelope_times_s`, then the envelopes at those times (`agents.proxy.encoding.envelope_inputs`)."""
        check_shapes(params_0to1, notes)
        pitches = oscillator_pitches(params_0to1, notes.to(params_0to1.dtype))
        register = (pitches[:, :1] - NOTE_CENTER) / NOTE_SCALE
        parts = [params_0to1 * 2.0 - 1.0, register, pitch_class(pitches[:, 0]), pitch_class(pitches[:, 1])]
        if self.log_levels:
            parts.append(log_level(params_0to1[:, torch.from_numpy(LOG_LEVEL_COLUMNS)]))
            parts.append(log_level(harmonic_gains(params_0to1[:, torch.from_numpy(WAVE_COLUMNS)])))
        if self.envelope_times_s:
            parts.append(envelope_inputs(params_0to1, self.envelope_times_s))
        return torch.cat(parts, dim=1)

    def predict_normalized(self, params_0to1: Tensor, notes: Tensor) -> Tensor:
        """[B, 24], [B] -> z-normalized descriptors [B, K] (what the network is trained on)."""
        params_0to1, notes = params_0to1.float(), notes.float()
        y = self.net(self.encode(params_0to1, notes))
        return y if self._chroma_at < 0 else self._assemble(y, oscillator_pitches(params_0to1, notes))

    def forward(self, params_0to1: Tensor, notes: Tensor) -> Tensor:
        if not torch.is_grad_enabled():
            return self._predict_no_grad(params_0to1, notes)
        return self.predict_normalized(params_0to1, notes) * self.out_std + self.out_mean

    def _fused(self) -> list[tuple[Tensor, Tensor]]:
        """(weight [in, out], bias) per layer with the de-normalization folded into the last one
        ("direct" chroma head; with "rotate" the de-normalization follows the rotation).

        Rebuilt whenever a parameter or buffer changed (in-place updates bump tensor versions)."""
        tensors = [t for m in self._linears for t in (m.weight, m.bias)] + [self.out_mean, self.out_std]
        key = tuple(v for t in tensors for v in (id(t), t.data_ptr(), t._version))  # no module walk: ~2 µs
        if key != self._fused_key:
            with torch.no_grad():
                layers = [(m.weight.t().contiguous(), m.bias.clone()) for m in self._linears]
                if self._chroma_at < 0:
                    w, b = layers[-1]
                    layers[-1] = ((w * self.out_std).contiguous(), b * self.out_std + self.out_mean)
            self._fused_layers, self._fused_key = layers, key
            self._half_layers = []
            if self.precision == "bfloat16":
                self._half_layers = bf16_layers([(m.weight.detach().t(), m.bias.detach()) for m in self._linears])
            self.refresh_numpy()
        return self._fused_layers

    def _predict_no_grad(self, params_0to1: Tensor, notes: Tensor) -> Tensor:
        """forward() without autograd: addmm in L2-sized row blocks (on the CPU in bfloat16 where
        `precision` says so and the batch has `bf16.MIN_ROWS` rows or more); on the CPU the input encoding, the
        SiLU and the chroma head with the de-normalization are numba kernels (`agents.proxy.kernels`),
        elsewhere torch ops with the de-normalization folded into the last layer ("direct" head);
        tiny CPU batches (an environment step) go through `predict_numpy`."""
        layers = self._fused()
        check_shapes(params_0to1, notes)
        if params_0to1.shape[0] <= NUMPY_MAX_ROWS and params_0to1.device.type == "cpu":
            small = self.predict_numpy(params_0to1.detach().float().numpy(), notes.detach().float().numpy())
            return torch.from_numpy(small)
        params_0to1, notes = params_0to1.float(), notes.float()
        cpu = params_0to1.device.type == "cpu"
        if cpu:  # one numba pass each for the input encoding and the chroma head + de-normalization
            params_0to1, notes = params_0to1.detach().contiguous(), notes.detach().contiguous()
            x = torch.empty(params_0to1.shape[0], self.n_inputs)
            self._encode_into(params_0to1.numpy(), notes.numpy(), x.numpy())
        else:
            x = self.encode(params_0to1, notes)
        y = torch.empty(x.shape[0], layers[-1][0].shape[1], dtype=x.dtype, device=x.device)
        if cpu and self._half_layers and x.shape[0] >= MIN_ROWS:  # z-normalized output, de-normalized in float32
            run_chain(x, self._half_layers, y)
            if self._chroma_at < 0:
                return y.mul_(self.out_std).add_(self.out_mean)
        else:
            _run_float32(x, layers, y)
        if self._chroma_at < 0:
            return y
        if not cpu:
            return self._assemble(y, oscillator_pitches(params_0to1, notes)).mul_(self.out_std).add_(self.out_mean)
        out = torch.empty(x.shape[0], len(self.descriptor_names))
        std, mean = self.out_std.numpy(), self.out_mean.numpy()
        assemble_rows(
            y.numpy(),
            params_0to1.numpy(),
            notes.numpy(),
            OSC2_SEMIS,
            OSC2_FINE,
            self._chroma_at,
            std,
            mean,
            out.numpy(),
        )
        return out

    def _encode_into(self, params: np.ndarray, notes: np.ndarray, out: np.ndarray) -> None:
        """`encode` as the numba kernel, into out [B, n_inputs] (float32, C-contiguous)."""
        encode_rows(
            params,
            notes,
            OSC2_SEMIS,
            OSC2_FINE,
            NOTE_CENTER,
            NOTE_SCALE,
            self._level_columns,
            self._wave_columns,
            LOG_LEVEL_FLOOR,
            out,
        )
        if self.envelope_times_s:
            start = self.n_inputs - N_ENVELOPE_INPUTS_PER_TIME * len(self.envelope_times_s)
            envelope_rows(
                params, ENVELOPE_COLUMNS, ENVELOPE_CONSTANTS, self._envelope_times, LOG_LEVEL_FLOOR, out, start
            )

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
        params = np.ascontiguousarray(np.atleast_2d(np.asarray(params_0to1, dtype=np.float32)))
        notes = np.ascontiguousarray(np.atleast_1d(np.asarray(notes, dtype=np.float32)))
        if params.shape[1] != N_PARAMS or notes.shape != (params.shape[0],):
            raise ValueError(f"Proxy: need params [B, {N_PARAMS}] and notes [B], got {params.shape}, {notes.shape}")
        x = np.empty((params.shape[0], self.n_inputs), np.float32)
        self._encode_into(params, notes, x)
        for w, b in layers[:-1]:
            x = x @ w + b
            silu_rows(x)
        w, b = layers[-1]
        y = x @ w + b
        std, mean = self._np_scale
        if self._chroma_at < 0:
            return y * std + mean
        out = np.empty((params.shape[0], len(self.descriptor_names)), np.float32)
        assemble_rows(y, params, notes, OSC2_SEMIS, OSC2_FINE, self._chroma_at, std, mean, out)
        return out

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
                "chroma_head": self.chroma_head,
                "log_levels": self.log_levels,
                "envelope_times_s": list(self.envelope_times_s),
                **describe_io(self.log_levels, bool(self.envelope_times_s), self._chroma_at >= 0),
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
        except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
            raise ProxyError(f"{weights_path}: cannot read proxy weights ({exc})") from exc
        try:
            proxy = cls(
                meta["descriptor_names"],
                meta["hidden"],
                chroma_head=meta.get("chroma_head", "direct"),
                log_levels=bool(meta.get("log_levels", False)),
                envelope_times_s=meta.get("envelope_times_s") or (),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProxyError(f"{meta_path}: {exc}") from exc
        try:
            proxy.load_state_dict(tensors)
        except RuntimeError as exc:
            raise ProxyError(f"{weights_path}: weights do not match {meta_path} ({str(exc).splitlines()[0]})") from exc
        proxy.meta = meta
        proxy.error_scale_z  # noqa: B018 -- validates the scales now, with the file's name
        try:
            proxy.set_precision(str(meta.get("no_grad_precision", "float32")))
        except ValueError as exc:
            raise ProxyError(f"{meta_path}: no_grad_precision: {exc}") from exc
        proxy.eval()
        proxy.refresh_numpy()
        return proxy
