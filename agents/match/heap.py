"""Freed memory stays in the process heap while the matching env runs (glibc malloc settings).

Input: how many MiB of freed memory the allocator may keep (`match.heap_keep_mb`). Output: the
settings applied to this process (returned as the two values, or None where they do not apply).

Each env step and each episode reset allocates and frees megabytes of spectra and target features
(torch and numpy arrays). With glibc's defaults, buffers of more than a few MiB are mapped fresh
and unmapped when freed, and every reuse page-faults the memory in again: a reset wave of 64
targets took ~10,000 page faults and ~40 ms of kernel time for ~36 ms of work (2-vCPU AMD EPYC VM,
`benchmarks/env.py`). With the mmap threshold at glibc's maximum (32 MiB) and the trim threshold at
`keep_mb`, those buffers come from the heap and stay there: ~500 faults, ~2 ms of kernel time. The
cost: up to `keep_mb` of freed memory per malloc arena stays resident (64 envs: RSS 506 MB flat over
300 steps, against 446 MB with glibc's defaults). Applied once per process (the settings are
process-wide; forked workers inherit them); 0 leaves glibc's defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
MAX_KEEP_MB = 2047  # mallopt takes a C int of bytes
_M_TRIM_THRESHOLD = -1  # mallopt parameters, <malloc.h>
_M_MMAP_THRESHOLD = -3
_applied: tuple[int, int] | None = None
_lock = threading.Lock()


def keep_freed_memory(keep_mb: int) -> tuple[int, int] | None:
    """Apply (mmap threshold, trim threshold) in bytes, or leave the allocator alone (keep_mb 0, a
    libc without `mallopt`, or a larger setting already applied); returns what is now in force."""
    global _applied
    if not isinstance(keep_mb, int) or isinstance(keep_mb, bool) or not 0 <= keep_mb <= MAX_KEEP_MB:
        raise ValueError(f"match.heap_keep_mb must be an int in [0, {MAX_KEEP_MB}] (MiB), got {keep_mb!r}")
    with _lock:
        if keep_mb == 0 or (_applied is not None and _applied[1] >= keep_mb * 1024 * 1024):
            return _applied
        mallopt = _mallopt()
        if mallopt is None:
            return None
        trim_bytes = keep_mb * 1024 * 1024
        if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) != 1 or mallopt(_M_TRIM_THRESHOLD, trim_bytes) != 1:
            raise OSError(f"mallopt refused mmap threshold {MMAP_THRESHOLD_BYTES} / trim threshold {trim_bytes}")
        _applied = (MMAP_THRESHOLD_BYTES, trim_bytes)
        return _applied


def _mallopt() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """glibc's `mallopt`, or None on a C library without it (musl, macOS): the defaults then stay."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is not None:
        mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt
