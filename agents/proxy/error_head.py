"""The proxy's error head: how far to trust each prediction (per-sound error scales).

Input: a proxy, normalized params [B, 24] and MIDI notes [B]. Output: the scale of the proxy's error
per descriptor at those params [B, K] (z-units): with `kind` "gaussian" its standard deviation,
with "laplace" the maximum-likelihood Laplace scale (the expected |prediction - truth|). The proxy
predicts the mean descriptors; its error is far from uniform: the flatness and low MFCCs of a pure
tone (noise_level 0) are off by 4x the average, a noisy patch's chroma is noise. One global scale
per descriptor (`Proxy.error_scale_z`) cannot say that, this head can. Ranking candidates by
sum_k (|pred_k - true_k| / scale_k(params))^p (p = 2 Gaussian, 1 Laplace) is then the likelihood of
each candidate under the proxy's predictive distribution at the query's params (`mrr_weighted` in
`agents.proxy.evaluate`). The Gaussian model ranks better on held-out presets and random patches
alike (`docs/benchmarks.md`: a wrong candidate's large errors weigh more) and is the default.

Fitted with the proxy frozen (`fit_error_head`, via `python -m agents.proxy.calibrate --head-table`)
by minimizing the negative log-likelihood (`head_nll`) on renders that neither the
proxy's training tables nor the held-out sets hold; its last layer starts at zero weights with the
global log-scales as bias, so training starts from the global model and can only refine it.

Saved beside the proxy: `error_head.safetensors` (the linear layers) and the `error_head` section
of `proxy.yaml` (layer sizes, the digest of the proxy weights it was fitted on, training facts).
A head whose digest does not match the proxy's weights is refused with that message.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from agents.proxy.model import META_FILE, Proxy, ProxyError

HEAD_FILE = "error_head.safetensors"
POWER = {"gaussian": 2, "laplace": 1}  # of |error| / scale in each kind's log-likelihood (the ranking)
HEAD_KINDS = tuple(POWER)
MIN_SCALE_Z = 1e-4  # log-scales are clamped here: a zero scale would make one descriptor decide every ranking


class ErrorHead(nn.Module):
    """MLP: the proxy's input encoding [B, n_inputs] -> log Laplace scales [B, K] (z-units)."""

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        hidden: Sequence[int],
        init_scale_z: np.ndarray | None = None,
        kind: str = "gaussian",
    ):
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"ErrorHead: kind must be one of {HEAD_KINDS}, got {kind!r}")
        self.kind = kind
        self.power = POWER[kind]
        self.hidden: tuple[int, ...] = tuple(int(h) for h in hidden)
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"ErrorHead: hidden sizes must be >= 1, got {list(self.hidden)}")
        sizes = (n_inputs, *self.hidden)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.SiLU()]
        last = nn.Linear(sizes[-1], n_outputs)
        with torch.no_grad():
            last.weight.zero_()
            if init_scale_z is None:
                last.bias.zero_()
            else:
                last.bias.copy_(torch.from_numpy(np.log(np.maximum(init_scale_z, MIN_SCALE_Z)).astype(np.float32)))
        self.net = nn.Sequential(*layers, last)

    def forward(self, encoded: Tensor) -> Tensor:
        return self.net(encoded).clamp_min(float(np.log(MIN_SCALE_Z)))


def head_nll(kind: str, log_scale: Tensor, abs_error: Tensor) -> Tensor:
    """Mean negative log-likelihood without its constant: Laplace |e| / s + log s, Gaussian
    (e / s)^2 / 2 + log s (s the standard deviation)."""
    ratio = abs_error * torch.exp(-log_scale)
    return ((ratio if kind == "laplace" else 0.5 * ratio * ratio) + log_scale).mean()


def nll_terms(kind: str, abs_error: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Elementwise negative log-likelihood with its constant (nats): Laplace |e| / s + log 2s,
    Gaussian (e / s)^2 / 2 + log s + log(2 pi) / 2. Comparable across the two kinds."""
    ratio = abs_error / scale
    if kind == "laplace":
        return ratio + np.log(2.0 * scale)
    return 0.5 * ratio * ratio + np.log(scale) + 0.5 * np.log(2.0 * np.pi)


def proxy_digest(proxy: Proxy) -> str:
    """sha256 (16 hex digits) of the proxy's weights and normalization: what a head was fitted on."""
    h = hashlib.sha256()
    for name, t in sorted(proxy.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _encoded(proxy: Proxy, params: np.ndarray, notes: np.ndarray, batch_size: int = 65536) -> Tensor:
    with torch.no_grad():
        return torch.cat(
            [
                proxy.encode(torch.from_numpy(params[s : s + batch_size]), torch.from_numpy(notes[s : s + batch_size]))
                for s in range(0, params.shape[0], batch_size)
            ]
        )


def predict_scales(proxy: Proxy, head: ErrorHead, params: np.ndarray, notes: np.ndarray) -> np.ndarray:
    """[N, 24] float32 params, [N] notes -> [N, K] float64 Laplace scales of the proxy's error (z-units)."""
    params = np.ascontiguousarray(params, dtype=np.float32)
    notes = np.ascontiguousarray(notes, dtype=np.float32)
    with torch.no_grad():
        return torch.exp(head(_encoded(proxy, params, notes))).numpy().astype(np.float64)


def abs_errors_z(proxy: Proxy, params: np.ndarray, notes: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
    """|prediction - truth| [N, K] in the proxy's z-units."""
    from agents.proxy.evaluate import predict_table

    std = proxy.out_std.numpy().astype(np.float64)
    return np.abs(predict_table(proxy, params, notes) - descriptors) / std


def fit_error_head(
    proxy: Proxy,
    params: np.ndarray,
    notes: np.ndarray,
    descriptors: np.ndarray,
    *,
    hidden: Sequence[int] = (256, 256),
    epochs: int = 24,
    batch_size: int = 4096,
    lr: float = 2e-3,
    val_rows: int = 20000,
    seed: int = 0,
    progress: bool = True,
    kind: str = "gaussian",
) -> tuple[ErrorHead, dict[str, Any]]:
    """Fit an `ErrorHead` of `kind` for the frozen `proxy` on rendered rows (params, notes, descriptors [N, K]).

    Adam with a one-cycle learning rate; `val_rows` rows (at most a fifth) are held back and the
    head's and the global scales' validation NLL reported in the facts. The global scales (Laplace:
    the proxy's `error_scale_z`, else the training rows' mean |error|; Gaussian: their RMS error)
    initialize the head."""
    if kind not in HEAD_KINDS:
        raise ValueError(f"error head: kind must be one of {HEAD_KINDS}, got {kind!r}")
    n = params.shape[0]
    n_val = min(int(val_rows), n // 5)
    if n - n_val < batch_size or n_val < 1:
        raise ValueError(f"error head: {n} rows is too few for batches of {batch_size} plus validation rows")
    if epochs < 1 or lr <= 0:
        raise ValueError(f"error head: need epochs >= 1 and lr > 0, got epochs={epochs}, lr={lr}")
    generator = torch.Generator().manual_seed(seed)
    errors = torch.from_numpy(abs_errors_z(proxy, params, notes, descriptors.astype(np.float64)).astype(np.float32))
    if not torch.isfinite(errors).all():
        raise ValueError("error head: the proxy's errors on these rows hold NaN/Inf (check the tables)")
    x = _encoded(proxy, np.ascontiguousarray(params, np.float32), np.ascontiguousarray(notes, np.float32))
    perm = torch.randperm(n, generator=generator)
    val, tr = perm[:n_val], perm[n_val:]
    global_scale = proxy.error_scale_z if kind == "laplace" else None
    if global_scale is None:
        moment = errors[tr].double().pow(1 if kind == "laplace" else 2).mean(0).numpy()
        global_scale = np.maximum(moment if kind == "laplace" else np.sqrt(moment), MIN_SCALE_Z)
    torch.manual_seed(seed)
    head = ErrorHead(x.shape[1], errors.shape[1], hidden, init_scale_z=global_scale, kind=kind)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    steps_per_epoch = tr.numel() // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps_per_epoch)
    global_log = torch.from_numpy(np.log(global_scale).astype(np.float32)).expand(n_val, -1)
    with torch.no_grad():
        val_global = float(head_nll(kind, global_log, errors[val]))
    history: list[dict[str, float]] = []
    start = time.monotonic()
    for epoch in range(epochs):
        head.train()
        order = tr[torch.randperm(tr.numel(), generator=generator)]
        for step in range(steps_per_epoch):
            idx = order[step * batch_size : (step + 1) * batch_size]
            loss = head_nll(kind, head(x[idx]), errors[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        head.eval()
        with torch.no_grad():
            val_nll = float(head_nll(kind, head(x[val]), errors[val]))
        history.append({"epoch": epoch + 1, "val_nll": round(val_nll, 5)})
        if progress:
            print(f"error head epoch {epoch + 1}: val NLL {val_nll:.4f} (global scales {val_global:.4f})", flush=True)
    facts = {
        "rows": int(n),
        "validation_rows": int(n_val),
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "learning_rate": float(lr),
        "val_nll": history[-1]["val_nll"],
        "val_nll_global_scales": round(val_global, 5),
        "minutes": round((time.monotonic() - start) / 60.0, 2),
    }
    return head, facts


def save_error_head(folder: Path, proxy: Proxy, head: ErrorHead, facts: dict[str, Any]) -> None:
    """Write `error_head.safetensors` and the `error_head` section of the proxy's `proxy.yaml`."""
    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(folder / HEAD_FILE))
    section = {
        "file": HEAD_FILE,
        "kind": head.kind,
        "hidden": list(head.hidden),
        "activation": "silu",
        "input": "the proxy's input encoding (Proxy.encode)",
        "output": f"log {head.kind} scale of the proxy's error per descriptor (z-units)",
        "proxy_digest": proxy_digest(proxy),
        "training": facts,
    }
    proxy.save(folder, {"error_head": section})


def load_error_head(folder: str | Path, proxy: Proxy) -> ErrorHead | None:
    """The proxy folder's error head, or None when `proxy.yaml` has no `error_head` section."""
    section = proxy.meta.get("error_head")
    if section is None:
        return None
    path = Path(folder) / HEAD_FILE
    if not isinstance(section, dict) or not isinstance(section.get("hidden"), list):
        raise ProxyError(f"{Path(folder) / META_FILE}: error_head must be a mapping with 'hidden' layer sizes")
    if section.get("proxy_digest") != proxy_digest(proxy):
        raise ProxyError(
            f"{path}: fitted on other proxy weights (digest {section.get('proxy_digest')}, these are "
            f"{proxy_digest(proxy)}); refit it with python -m agents.proxy.calibrate --head-table"
        )
    kind = section.get("kind", "laplace")  # heads saved before the kind was recorded are Laplace
    if kind not in HEAD_KINDS:
        raise ProxyError(f"{Path(folder) / META_FILE}: error_head kind must be one of {HEAD_KINDS}, got {kind!r}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise ProxyError(f"{path}: cannot read the error head ({exc})") from exc
    try:
        head = ErrorHead(proxy.n_inputs, len(proxy.descriptor_names), section["hidden"], kind=kind)
        head.load_state_dict(tensors)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ProxyError(f"{path}: weights do not match {META_FILE} error_head ({str(exc).splitlines()[0]})") from exc
    head.eval()
    return head
