"""bfloat16 layers for the proxy's gradient-free CPU path, where the CPU multiplies bfloat16 natively.

Input: the input encoding x [B, n_in] (float32), the network's (weight [in, out], bias) pairs in
bfloat16 (`bf16_layers`). Output: the last layer's output y [B, n_out] (float32, z-normalized),
written in place. On CPUs with AVX512-BF16 or AMX (`native_bf16`), oneDNN multiplies bfloat16
matrices at ~2x the float32 rate (`docs/benchmarks.md`); every layer then runs in bfloat16
(8-bit mantissa, float32 accumulation) and the activations between them are kept as bfloat16: the
held-out MRR moves by less than its seed-to-seed spread (`docs/benchmarks.md`). The SiLU between
the layers is a table lookup: a bfloat16 input has 65,536 possible bit patterns, so `silu_table`
holds the SiLU of each (the float32 kernel's SiLU between widening and rounding, `silu_bf16`) and
`silu_lookup` maps the activations through it in place: the same bits as computing it, ~3x faster
(`docs/benchmarks.md`).
Chosen per proxy folder (`proxy.yaml` `no_grad_precision`, `Proxy.set_precision`), measured there
(`agents.proxy.evaluate` reports the precision it ran with); the differentiable path is always
float32. The kernels move bfloat16 as its uint16 bit pattern (the upper half of a float32;
round to nearest even) and release the GIL.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numba
import numpy as np
import torch
from torch import Tensor

from agents.proxy.kernels import SILU_TILE, silu_tile

PRECISIONS = ("float32", "bfloat16", "auto")
CHUNK_ROWS = 2048  # rows per block: the fastest of 256-4096 on this host (512 +13%, 1024 +5%, 4096 +17%)
MIN_ROWS = 128  # smaller batches run float32: oneDNN's ~10 us a bfloat16 product outweighs its speed there
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
def _silu_tile(h: np.ndarray, x: np.ndarray, poly: np.ndarray, bits: np.ndarray) -> None:
    """h [m] bfloat16 bits, in place; x, poly, bits [m] scratch: widen to float32, the float32 SiLU
    (`kernels.silu_tile`), round to nearest even."""
    x_bits = x.view(np.uint32)
    for j in range(h.shape[0]):
        x_bits[j] = np.uint32(h[j]) << np.uint32(16)
    silu_tile(x, poly, bits)
    for j in range(h.shape[0]):
        b = x_bits[j]
        h[j] = np.uint16((b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))


@numba.njit(**_JIT)
def silu_bf16(h: np.ndarray) -> None:
    """h [B, H] bfloat16 bits (C-contiguous), in place: SiLU computed in float32, rounded to nearest even."""
    flat = h.reshape(-1)
    scratch = np.empty((3, SILU_TILE), np.float32)
    for start in range(0, flat.shape[0], SILU_TILE):
        stop = min(flat.shape[0], start + SILU_TILE)
        m = stop - start
        _silu_tile(flat[start:stop], scratch[0, :m], scratch[1, :m], scratch[2, :m].view(np.int32))


@functools.cache
def silu_table() -> np.ndarray:
    """[65536] uint16, read-only: the bfloat16 SiLU (`silu_bf16`) of every bfloat16 bit pattern."""
    table = np.arange(1 << 16, dtype=np.uint16).reshape(1, -1)
    silu_bf16(table)
    table.flags.writeable = False
    return table.reshape(-1)


@numba.njit(**_JIT)
def _lookup(h: np.ndarray, table: np.ndarray) -> None:
    for j in range(h.shape[0]):
        h[j] = table[h[j]]


def silu_lookup(h: np.ndarray) -> None:
    """h [B, H] bfloat16 bits (C-contiguous), in place: `silu_bf16` by table (`silu_table`), bit for bit."""
    if not h.flags.c_contiguous:  # reshape would copy, and the result be lost
        raise ValueError(f"silu_lookup: h must be C-contiguous, got strides {h.strides}")
    _lookup(h.reshape(-1), silu_table())


def bf16_layers(layers: list[tuple[Tensor, Tensor]]) -> list[tuple[Tensor, Tensor]]:
    """Every layer's (weight [in, out], bias) in bfloat16."""
    return [(w.to(torch.bfloat16).contiguous(), b.to(torch.bfloat16)) for w, b in layers]


def _bits(t: Tensor) -> np.ndarray:
    return t.view(torch.int16).numpy().view(np.uint16)


def run_chain(x: Tensor, layers: list[tuple[Tensor, Tensor]], y: Tensor, chunk_rows: int = CHUNK_ROWS) -> None:
    """x [rows, n_in] float32 -> y [rows, n_out] float32 through the SiLU MLP `layers` (`bf16_layers`),
    `chunk_rows` rows at a time through buffers allocated once per call."""
    rows = x.shape[0]
    block = max(1, min(rows, chunk_rows))
    x16 = torch.empty(block, x.shape[1], dtype=torch.bfloat16)
    buffers = [torch.empty(block, w.shape[1], dtype=torch.bfloat16) for w, _ in layers]
    for start in range(0, rows, block):
        stop = min(rows, start + block)
        h = x16[: stop - start]
        h.copy_(x[start:stop])
        for i, ((w, b), buffer) in enumerate(zip(layers, buffers, strict=True)):
            out = buffer[: stop - start]
            torch.addmm(b, h, w, out=out)
            if i < len(layers) - 1:
                silu_lookup(_bits(out))
            h = out
        y[start:stop].copy_(h)
