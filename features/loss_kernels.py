"""numba kernels of the perceptual loss's gradient-free path (`features.loss`, CPU, float32).

Input: float32 arrays (views of torch tensors, no copies). Output: per-row sums in float64.
Each kernel is one pass over its data where the torch expression it replaces makes four or five
(each with a fresh tensor); elementwise values are the same float32 operations in the same order,
only the per-row sums are accumulated differently (float64 here, float32 cascade in torch), so the
results agree with the torch path to float32 rounding. All kernels release the GIL (`nogil`), so
row blocks can run on several Python threads.
"""

from __future__ import annotations

import numba
import numpy as np

# reassociation (and ignoring the sign of zero) lets LLVM vectorize the float64 row sums; no
# contraction into FMAs, so the elementwise float32 values match torch's separate operations.
_FLAGS = {"reassoc", "nsz"}


@numba.njit(cache=True, nogil=True, fastmath=_FLAGS)
def magnitude_distance(
    spec_ri: np.ndarray,
    gain2: np.ndarray,
    target_mag: np.ndarray,
    sqrt_eps: float,
    log_floor: float,
    log_arg: np.ndarray,
) -> np.ndarray:
    """Per row: sum over bins of (sqrt(power + sqrt_eps) - target_mag)^2, float64 `[B]`.

    spec_ri `[B, 2F]` (real, imaginary, real, ... of F = frames * bins values), gain2 `[B]` (power
    gain, 1.0 for none), target_mag `[B or 1, F]`. Writes power + log_floor into log_arg `[B, F]` (the
    argument of the log-magnitude term, which torch's vectorized log then takes in place).
    Row views and flat indices: ~3x faster than indexing `[row, i, 0]` (LLVM vectorizes these loops).
    """
    n_rows, n_values = log_arg.shape
    eps = np.float32(sqrt_eps)
    floor = np.float32(log_floor)
    out = np.zeros(n_rows)
    for row in range(n_rows):
        spec = spec_ri[row]
        target = target_mag[row if target_mag.shape[0] > 1 else 0]
        arg = log_arg[row]
        gain = gain2[row]
        acc = 0.0
        for i in range(n_values):
            re = spec[2 * i]
            im = spec[2 * i + 1]
            power = (re * re + im * im) * gain
            diff = np.float32(np.sqrt(power + eps)) - target[i]  # float32, as torch rounds it
            acc += diff * diff
            arg[i] = power + floor
        out[row] = acc
    return out


@numba.njit(cache=True, nogil=True, fastmath=_FLAGS)
def abs_difference_sum(values: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per row: sum |values - target|, float64 `[B]` (values `[B, F]`, target `[B or 1, F]`)."""
    n_rows, n_values = values.shape
    out = np.zeros(n_rows)
    for row in range(n_rows):
        v = values[row]
        t = target[row if target.shape[0] > 1 else 0]
        acc = 0.0
        for i in range(n_values):
            acc += abs(v[i] - t[i])
        out[row] = acc
    return out


@numba.njit(cache=True, nogil=True, fastmath=_FLAGS)
def penalty_sums(audio: np.ndarray, threshold: float) -> np.ndarray:
    """Per row `[B, 3]` float64: sum of samples, count of |x| >= threshold, sum of max(0, |x| - 1)."""
    n_rows, n_samples = audio.shape
    limit = np.float32(threshold)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    out = np.zeros((n_rows, 3))
    for row in range(n_rows):
        x = audio[row]
        total = 0.0
        clipped = 0.0
        over = 0.0
        for i in range(n_samples):
            mag = abs(x[i])
            total += x[i]
            clipped += 1.0 if mag >= limit else 0.0
            over += max(mag - one, zero)
        out[row, 0] = total
        out[row, 1] = clipped
        out[row, 2] = over
    return out
