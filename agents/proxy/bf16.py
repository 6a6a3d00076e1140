"""bfloat16 hidden layers for the proxy's gradient-free CPU path, where the CPU multiplies bfloat16 natively.

Input: the input encoding x [B, n_in] (float32), the network's (weight [in, out], bias) pairs in
float32 and in bfloat16. Output: the last layer's float32 output y [B, n_out], written in place.
On CPUs with AVX512-BF16 or AMX (`native_bf16`), oneDNN multiplies bfloat16 matrices at ~1.8x the
float32 rate (`docs/benchmarks.md`); the activations between the hidden layers are then kept as
bfloat16 (8-bit mantissa, accumulation in float32), while the input layer (the parameters need
their float32 resolution) and the output layer (the descriptors' precision) stay float32.
Chosen per proxy folder (`proxy.yaml` `no_grad_precision`, `Proxy.set_precision`), measured there
(`agents.proxy.evaluate` reports the precision it ran with); the differentiable path is always
float32. The kernels move bfloat16 as its uint16 bit pattern (the upper half of a float32;
round to nearest even on the way in) and release the GIL.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numba
import numpy as np
import torch
from torch import Tensor

from agents.proxy.kernels import silu_rows

PRECISIONS = ("float32", "bfloat16", "auto")
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


@functools.cache
def native_bf16() -> bool:
    """True when this CPU multiplies bfloat16 in hardware (Linux /proc/cpuinfo flags avx512_bf16 or
    amx_bf16). Elsewhere oneDNN would emulate it, slower than float32: False."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return ("avx512_bf16" in flags or "amx_bf16" in flags) and torch.backends.mkldnn.is_available()


def resolve(precision: str) -> str:
    """'float32' | 'bfloat16' | 'auto' -> the precision that will run ('auto': bfloat16 where native)."""
    if precision not in PRECISIONS:
        raise ValueError(f"proxy precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bfloat16" if native_bf16() else "float32"
    return precision


@numba.njit(**_JIT)
def _to_bf16(src: np.ndarray, dst: np.ndarray) -> None:
    """float32 [n] -> bfloat16 bits [n] (round to nearest even; the proxy's activations are finite)."""
    bits = src.view(np.uint32)
    for i in range(bits.shape[0]):
        b = bits[i]
        dst[i] = np.uint16((b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))


@numba.njit(**_JIT)
def _from_bf16(src: np.ndarray, dst: np.ndarray) -> None:
    """bfloat16 bits [n] -> float32 [n] (exact)."""
    bits = dst.view(np.uint32)
    for i in range(src.shape[0]):
        bits[i] = np.uint32(src[i]) << np.uint32(16)


@numba.njit(**_JIT)
def silu_to_bf16(h: np.ndarray, dst: np.ndarray) -> None:
    """h [B, H] float32 (overwritten) -> dst [B, H] bfloat16 bits: SiLU, then rounding."""
    silu_rows(h)
    _to_bf16(h.reshape(-1), dst.reshape(-1))


@numba.njit(**_JIT)
def silu_bf16(h: np.ndarray, scratch: np.ndarray) -> None:
    """h [B, H] bfloat16 bits, in place: SiLU computed in float32 (`scratch` [B, H] float32)."""
    flat, tmp = h.reshape(-1), scratch.reshape(-1)
    _from_bf16(flat, tmp)
    silu_rows(scratch)
    _to_bf16(tmp, flat)


@numba.njit(**_JIT)
def silu_from_bf16(h: np.ndarray, dst: np.ndarray) -> None:
    """h [B, H] bfloat16 bits -> dst [B, H] float32: SiLU."""
    _from_bf16(h.reshape(-1), dst.reshape(-1))
    silu_rows(dst)


def bf16_layers(layers: list[tuple[Tensor, Tensor]]) -> list[tuple[Tensor, Tensor]]:
    """The hidden-to-hidden layers' (weight, bias) in bfloat16 (the first and last stay float32)."""
    return [(w.to(torch.bfloat16), b.to(torch.bfloat16)) for w, b in layers[1:-1]]


def _bits(t: Tensor) -> np.ndarray:
    return t.view(torch.int16).numpy().view(np.uint16)


def run_chain(x: Tensor, layers: list[tuple[Tensor, Tensor]], half: list[tuple[Tensor, Tensor]], y: Tensor) -> None:
    """x [rows, n_in] float32 -> y [rows, n_out] float32 through the SiLU MLP `layers` (float32,
    weight [in, out]), its hidden-to-hidden layers as `half` (`bf16_layers`). Needs >= 2 hidden
    layers (a single hidden layer has no bfloat16 layer to run)."""
    rows = x.shape[0]
    hidden = layers[0][0].shape[1]
    h32 = torch.empty(rows, hidden)
    h16 = torch.empty(rows, hidden, dtype=torch.bfloat16)
    torch.addmm(layers[0][1], x, layers[0][0], out=h32)
    silu_to_bf16(h32.numpy(), _bits(h16))
    for i, (w, b) in enumerate(half):
        out16 = torch.addmm(b, h16, w)
        if i < len(half) - 1:
            silu_bf16(_bits(out16), h32.numpy() if out16.shape[1] == hidden else np.empty(out16.shape, np.float32))
            h16 = out16
        else:
            h32 = torch.empty(out16.shape)
            silu_from_bf16(_bits(out16), h32.numpy())
    torch.addmm(layers[-1][1], h32, layers[-1][0], out=y)
