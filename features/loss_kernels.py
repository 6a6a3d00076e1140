"""numba kernels of the perceptual loss's gradient-free path (`features.loss`, CPU, float32).

Input: float32 arrays (views of torch tensors, no copies). Output: per-row sums in float64, or
float32 arrays. Each kernel is one pass over its data where the torch expressions it replaces make
several (each with a fresh tensor): `stft_distances` (power, magnitude distance, log distance of all
STFT resolutions), `frame_bands` (power of the analysis frames, their mel band power through the
filters' nonzero ranges, K-weighted mean square), `spectral_centroids`, `penalty_sums`, `is_clean`,
and the STFT: `stft` (torch.stft's centred, zero-padded frames, hop size / 4, as complex64 `[B, frames,
bins]`) and `stft_scores` (one resolution's `stft_distances` with each row's spectrum computed and
scored while in cache, never materialized for the batch). Each row is framed and windowed into
row-sized scratch and transformed there by `rocket_fft.r2c` (the `rocket-fft` package: DUCC0's FFTs
called from numba, float32 in, complex64 out; on this project's AMD EPYC VMs 1.3-2x faster than torch's
MKL, which takes a generic path on AMD), through `stft_row`, the one place a row is transformed:
identical samples give bit-identical spectra in every caller. They live in this one file (over the
400-line guideline, on purpose) because numba's cache watches only the file that defines a kernel, not
the kernels it calls: a kernel calling one from another file would keep running a stale compiled copy.
Elementwise values are the same float32 operations as torch's, except the natural log: `ln_into` /
`_ln_row` is a vectorizable float32 log (Cephes `logf`'s polynomial with FMAs, within 1 ulp of the
correctly rounded value; torch's own is within 1 ulp too), used for the renders and for the cached
targets alike, so identical audio still gives exactly 0. Sums are accumulated in float64 (float32
cascades in torch), so the results agree with the torch path to float32 rounding. All kernels release
the GIL (`nogil`), so row blocks can run on several Python threads.
"""

from __future__ import annotations

import numba
import numpy as np
import rocket_fft

# reassociation (and ignoring the sign of zero) lets LLVM vectorize the float64 row sums; no
# contraction into FMAs, so the elementwise float32 values match torch's separate operations.
# error_model="numpy": no zero-division checks, whose branches would stop vectorization.
_JIT = {"cache": True, "nogil": True, "fastmath": {"reassoc", "nsz"}, "error_model": "numpy"}

_MANTISSA_BITS = 0x7FFFFF
_ONE_BITS = 0x3F800000  # 1.0f
_SQRT2_BITS = 0x3FB504F3  # sqrt(2) rounded down: mantissas above it are halved (range [sqrt(.5), sqrt(2)))
_EXPONENT_ONE = 0x800000
# Cephes logf: ln(1 + x) = x - x^2 / 2 + x^3 P(x) on x in [sqrt(.5) - 1, sqrt(2) - 1]
_P = (
    7.0376836292e-2,
    -1.1514610310e-1,
    1.1676998740e-1,
    -1.2420140846e-1,
    1.4249322787e-1,
    -1.6668057665e-1,
    2.0000714765e-1,
    -2.4999993993e-1,
    3.3333331174e-1,
)
_LN2_HI = 0.693359375  # exact in float32: e * _LN2_HI is exact for |e| < 2^13
_LN2_LO = -2.12194440e-4


@numba.njit(**_JIT)
def _split(args: np.ndarray, mantissa_bits: np.ndarray, exponent: np.ndarray) -> None:
    """args `[n]` > 0 normal -> mantissas in [sqrt(.5), sqrt(2)) (as int32 bits) and float32 exponents."""
    bits = args.view(np.int32)
    for i in range(args.shape[0]):
        b = bits[i]
        m = (b & _MANTISSA_BITS) | _ONE_BITS
        big = m > _SQRT2_BITS
        mantissa_bits[i] = m - _EXPONENT_ONE if big else m
        exponent[i] = np.float32(((b >> 23) - 127) + (1 if big else 0))


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _ln(m: np.float32, e: np.float32) -> np.float32:
    """ln(m * 2^e) for m in [sqrt(.5), sqrt(2)), float32 throughout (Cephes logf, its Horner steps as FMAs:
    within 1 ulp of the correctly rounded log, and 1.5x faster than separate multiplies and adds)."""
    x = m - np.float32(1.0)
    z = x * x
    p = np.float32(_P[0])
    p = p * x + np.float32(_P[1])
    p = p * x + np.float32(_P[2])
    p = p * x + np.float32(_P[3])
    p = p * x + np.float32(_P[4])
    p = p * x + np.float32(_P[5])
    p = p * x + np.float32(_P[6])
    p = p * x + np.float32(_P[7])
    p = p * x + np.float32(_P[8])
    y = x * z * p + e * np.float32(_LN2_LO) - np.float32(0.5) * z
    return x + y + e * np.float32(_LN2_HI)


@numba.njit(cache=True, nogil=True, error_model="numpy")  # no reassociation: the same ops in every caller
def _ln_row(args: np.ndarray, mantissa_bits: np.ndarray, exponent: np.ndarray, out: np.ndarray) -> None:
    """out = ln(args) for args `[n]` > 0 normal (mantissa_bits, exponent: scratch `[n]`)."""
    _split(args, mantissa_bits, exponent)
    m = mantissa_bits.view(np.float32)
    for i in range(args.shape[0]):
        out[i] = _ln(m[i], exponent[i])


@numba.njit(**_JIT)
def ln_into(args: np.ndarray, out: np.ndarray) -> None:
    """out = ln(args), float32 `[B, F]` (args positive and normal, e.g. power + a floor)."""
    n_rows, n_values = args.shape
    mantissa = np.empty(n_values, np.int32)
    exponent = np.empty(n_values, np.float32)
    for row in range(n_rows):
        _ln_row(args[row], mantissa, exponent, out[row])


@numba.njit(**_JIT)
def row_distances(
    spec: np.ndarray,
    gain: np.float32,
    mag: np.ndarray,
    logpower: np.ndarray,
    eps: np.float32,
    floor: np.float32,
    scratch: np.ndarray,
    mantissa: np.ndarray,
    exponent: np.ndarray,
) -> tuple[float, float]:
    """(sum (sqrt(power + eps) - mag)^2, sum |ln(power + floor) - logpower|) of one row's spectrum
    `spec` `[2F]` (real, imaginary, ...; power = |.|^2 * gain) against `mag` and `logpower` `[F]`
    (scratch: float32 `[>= 2F]`, mantissa and exponent `[>= F]`). The one place these sums are taken:
    `stft_distances` and `stft_scores` give the same values."""
    n_values = mag.shape[0]
    arg = scratch[:n_values]
    log = scratch[n_values : 2 * n_values]
    squares = 0.0
    for i in range(n_values):
        re = spec[2 * i]
        im = spec[2 * i + 1]
        power = (re * re + im * im) * gain
        diff = np.float32(np.sqrt(power + eps)) - mag[i]  # float32, as torch rounds it
        squares += diff * diff
        arg[i] = power + floor
    _ln_row(arg, mantissa[:n_values], exponent[:n_values], log)
    abs_sum = 0.0
    for i in range(n_values):
        abs_sum += abs(log[i] - logpower[i])
    return squares, abs_sum


@numba.njit(**_JIT)
def stft_distances(
    specs: tuple[np.ndarray, ...],
    gain2: np.ndarray,
    target_mags: tuple[np.ndarray, ...],
    target_logs: tuple[np.ndarray, ...],
    sqrt_eps: float,
    log_floor: float,
) -> np.ndarray:
    """Per row and resolution `[B, R, 2]` float64: sum (sqrt(power + sqrt_eps) - target_mag)^2 and
    sum |ln(power + log_floor) - target_log|, over the F values of each of R spectra (`row_distances`).

    specs: R arrays `[B, 2F]` (real, imaginary, ... of F = frames * bins values), gain2 `[B]` (power
    gain, 1.0 for none), target_mags and target_logs: R arrays `[B or 1, F]`. One pass per row through
    row-sized scratch (in cache): power and the magnitude distance, the log, the log distance.
    """
    n_rows = gain2.shape[0]
    most = 0
    for spec in specs:
        most = max(most, spec.shape[1] // 2)
    eps = np.float32(sqrt_eps)
    floor = np.float32(log_floor)
    scratch = np.empty(2 * most, np.float32)
    mantissa = np.empty(most, np.int32)
    exponent = np.empty(most, np.float32)
    out = np.zeros((n_rows, len(specs), 2))
    for r in range(len(specs)):
        for row in range(n_rows):
            mag = target_mags[r][row if target_mags[r].shape[0] > 1 else 0]
            logpower = target_logs[r][row if target_logs[r].shape[0] > 1 else 0]
            out[row, r, 0], out[row, r, 1] = row_distances(
                specs[r][row], gain2[row], mag, logpower, eps, floor, scratch, mantissa, exponent
            )
    return out


@numba.njit(**_JIT)
def frame_bands(
    spec_ri: np.ndarray,
    first: int,
    step: int,
    mel: np.ndarray,
    mel_first: np.ndarray,
    mel_stop: np.ndarray,
    kweight: np.ndarray,
    power_out: np.ndarray,
    mel_out: np.ndarray,
    kms_out: np.ndarray,
) -> None:
    """Frames first, first + step, ... of spec_ri `[B, frames, bins, 2]`: their power `[B, T, bins]`,
    mel band power `[B, T, n_mels]` (mel `[n_mels, n_band]`, nonzero on bins mel_first..mel_stop - 1
    of each band: triangular filters touch ~2 bands per bin, 30x less work than the dense product) and
    K-weighted mean square `[B, T]` (kweight `[bins]`), in one pass over the spectrum."""
    for row in range(power_out.shape[0]):
        _row_bands(
            spec_ri[row], first, step, mel, mel_first, mel_stop, kweight, power_out[row], mel_out[row], kms_out[row]
        )


@numba.njit(**_JIT)
def _row_bands(
    spec_ri: np.ndarray,
    first: int,
    step: int,
    mel: np.ndarray,
    mel_first: np.ndarray,
    mel_stop: np.ndarray,
    kweight: np.ndarray,
    power_out: np.ndarray,
    mel_out: np.ndarray,
    kms_out: np.ndarray,
) -> None:
    """`frame_bands` of one row (spec_ri `[frames, bins, 2]`, outputs `[T, ...]`)."""
    n_frames, n_bins = power_out.shape
    for t in range(n_frames):
        spec = spec_ri[first + step * t]
        p = power_out[t]
        kms = 0.0
        for k in range(n_bins):
            re = spec[k, 0]
            im = spec[k, 1]
            p[k] = re * re + im * im
            kms += p[k] * kweight[k]
        kms_out[t] = kms
        for band in range(mel.shape[0]):
            acc = 0.0
            for k in range(mel_first[band], mel_stop[band]):
                acc += p[k] * mel[band, k]
            mel_out[t, band] = acc


@numba.njit(**_JIT)
def spectral_centroids(
    power: np.ndarray, freqs_khz: np.ndarray, floor_power: float, gain2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Centroids in Hz of band magnitudes sqrt(power + floor_power) over the first len(freqs_khz) bins.

    power `[B, T, bins]`, gain2 `[B]` (power gain of the clip centroid, 1.0 for none). Returns float32
    `[B, T]` per frame (ungained) and `[B]` of the frame-averaged power spectrum (gained), in one pass.
    """
    n_rows, n_frames, _ = power.shape
    frame_out = np.empty((n_rows, n_frames), np.float32)
    clip_out = np.empty(n_rows, np.float32)
    mean = np.empty(freqs_khz.shape[0], np.float64)
    for row in range(n_rows):
        clip_out[row] = _row_centroids(power[row], freqs_khz, np.float32(floor_power), gain2[row], mean, frame_out[row])
    return frame_out, clip_out


@numba.njit(**_JIT)
def _row_centroids(
    power: np.ndarray,
    freqs_khz: np.ndarray,
    floor: np.float32,
    gain: np.float32,
    mean: np.ndarray,
    frame_out: np.ndarray,
) -> np.float32:
    """`spectral_centroids` of one row (power `[T, bins]`, mean: float64 scratch `[n_band]`): fills
    frame_out `[T]`, returns the clip centroid."""
    n_frames = power.shape[0]
    n_band = freqs_khz.shape[0]
    mean[:] = 0.0
    for t in range(n_frames):
        p = power[t]
        weighted = 0.0
        total = 0.0
        for k in range(n_band):
            mag = np.sqrt(p[k] + floor)
            weighted += mag * freqs_khz[k]
            total += mag
            mean[k] += p[k]
        frame_out[t] = 1000.0 * weighted / total
    weighted = 0.0
    total = 0.0
    for k in range(n_band):
        mag = np.sqrt(np.float32(mean[k] / n_frames) * gain + floor)
        weighted += mag * freqs_khz[k]
        total += mag
    return np.float32(1000.0 * weighted / total)


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
def is_clean(audio: np.ndarray, max_abs: float) -> bool:
    """True when every sample is finite with |x| <= max_abs (so `features.batch.sanitize` would change nothing)."""
    limit = np.float32(max_abs)
    flat = audio.reshape(-1)
    bad = 0
    for i in range(flat.shape[0]):
        x = flat[i]
        bad += 0 if abs(x) <= limit else 1  # NaN compares False: counted
    return bad == 0


# -- the STFT -----------------------------------------------------------------------------------------

_LAST_AXIS = np.array([1], np.int64)


def n_frames(n_samples: int, size: int) -> int:
    """Frames of a centred STFT with hop size / 4 (`torch.stft(center=True)`)."""
    return n_samples // (size // 4) + 1


@numba.njit(**_JIT)
def frame_row(audio: np.ndarray, window: np.ndarray, frames: np.ndarray) -> None:
    """frames `[F, size]` = the windowed frames of one row `[N]`, centred, zero-padded, hop size / 4."""
    n_frames_, size = frames.shape
    hop = size // 4
    half = size // 2
    n = audio.shape[0]
    for t in range(n_frames_):
        start = t * hop - half
        lo = min(size, max(0, -start))
        hi = max(lo, min(size, n - start))
        frame = frames[t]
        frame[:lo] = 0.0
        frame[hi:] = 0.0
        # through slice views, indexed from 0: no negative-index wrap-around, so LLVM vectorizes
        dst = frame[lo:hi]
        src = audio[start + lo : start + hi]
        win = window[lo:hi]
        for k in range(hi - lo):
            dst[k] = src[k] * win[k]


@numba.njit(**_JIT)
def stft_row(audio: np.ndarray, window: np.ndarray, frames: np.ndarray, out: np.ndarray) -> None:
    """out `[F, size / 2 + 1]` complex64 = the STFT of one row `[N]` (frames: float32 scratch `[F, size]`)."""
    frame_row(audio, window, frames)
    rocket_fft.r2c(frames, out, _LAST_AXIS, True, 1.0, 1)


@numba.njit(**_JIT)
def stft(audio: np.ndarray, window: np.ndarray, out: np.ndarray) -> None:
    """out `[B, F, size / 2 + 1]` complex64 = the STFT of each row of audio `[B, N]` float32."""
    frames = np.empty((out.shape[1], window.shape[0]), np.float32)
    for row in range(audio.shape[0]):
        stft_row(audio[row], window, frames, out[row])


@numba.njit(**_JIT)
def stft_scores(
    audio: np.ndarray,
    window: np.ndarray,
    gain2: np.ndarray,
    target_mag: np.ndarray,
    target_log: np.ndarray,
    sqrt_eps: float,
    log_floor: float,
) -> np.ndarray:
    """`stft_distances` of one resolution `[B, 2]`, its spectra computed here row by
    row (`stft_row`) and scored while in cache instead of materialized for the batch: the same values
    as scoring `stft`'s output. audio `[B, N]`, window `[size]`, gain2 `[B]`, targets `[B or 1, F]`."""
    n_rows = audio.shape[0]
    size = window.shape[0]
    n_frames_ = audio.shape[1] // (size // 4) + 1  # `n_frames`
    n_values = n_frames_ * (size // 2 + 1)
    frames = np.empty((n_frames_, size), np.float32)
    spec = np.empty((n_frames_, size // 2 + 1), np.complex64)
    spec_ri = spec.reshape(-1).view(np.float32)
    scratch = np.empty(2 * n_values, np.float32)
    mantissa = np.empty(n_values, np.int32)
    exponent = np.empty(n_values, np.float32)
    eps = np.float32(sqrt_eps)
    floor = np.float32(log_floor)
    out = np.zeros((n_rows, 2))
    for row in range(n_rows):
        stft_row(audio[row], window, frames, spec)
        mag = target_mag[row if target_mag.shape[0] > 1 else 0]
        logpower = target_log[row if target_log.shape[0] > 1 else 0]
        out[row, 0], out[row, 1] = row_distances(
            spec_ri, gain2[row], mag, logpower, eps, floor, scratch, mantissa, exponent
        )
    return out


@numba.njit(**_JIT)
def stft_frames(
    audio: np.ndarray,
    window: np.ndarray,
    first: int,
    step: int,
    mel: np.ndarray,
    mel_first: np.ndarray,
    mel_stop: np.ndarray,
    kweight: np.ndarray,
    freqs_khz: np.ndarray,
    floor_power: float,
    spec_out: np.ndarray,
    power_out: np.ndarray,
    mel_out: np.ndarray,
    kms_out: np.ndarray,
    centroid_out: np.ndarray,
    clip_centroid_out: np.ndarray,
) -> None:
    """`stft` into spec_out, then `frame_bands` and `spectral_centroids` (no gain) of its frames first,
    first + step, ..., row by row while the row's spectrum is in cache: the same values as the three
    calls. audio `[B, N]`, spec_out `[B, F, bins]` complex64, the others as those kernels' outputs."""
    n_frames_, n_bins = spec_out.shape[1], spec_out.shape[2]
    frames = np.empty((n_frames_, window.shape[0]), np.float32)
    mean = np.empty(freqs_khz.shape[0], np.float64)
    floor = np.float32(floor_power)
    for row in range(audio.shape[0]):
        stft_row(audio[row], window, frames, spec_out[row])
        spec_ri = spec_out[row].reshape(-1).view(np.float32).reshape((n_frames_, n_bins, 2))
        _row_bands(spec_ri, first, step, mel, mel_first, mel_stop, kweight, power_out[row], mel_out[row], kms_out[row])
        clip_centroid_out[row] = _row_centroids(
            power_out[row], freqs_khz, floor, np.float32(1.0), mean, centroid_out[row]
        )


@numba.njit(**_JIT)
def _row_targets(
    spec: np.ndarray,
    mag_out: np.ndarray,
    log_out: np.ndarray,
    sqrt_eps: np.float32,
    log_floor: np.float32,
    scratch: np.ndarray,
    mantissa: np.ndarray,
    exponent: np.ndarray,
) -> float:
    """A target row's spectrum `[2F]` (real, imaginary, ...) -> mag_out = sqrt(power + sqrt_eps) and
    log_out = ln(power + log_floor) `[F]` (the values `row_distances` compares renders with: the same
    float32 operations), returns the sum of power (float64)."""
    n_values = mag_out.shape[0]
    arg = scratch[:n_values]
    energy = 0.0
    for i in range(n_values):
        re = spec[2 * i]
        im = spec[2 * i + 1]
        power = re * re + im * im
        mag_out[i] = np.sqrt(power + sqrt_eps)
        arg[i] = power + log_floor
        energy += power
    _ln_row(arg, mantissa[:n_values], exponent[:n_values], log_out)
    return energy


@numba.njit(**_JIT)
def spectrum_targets(
    spec_ri: np.ndarray,
    sqrt_eps: float,
    log_floor: float,
    mag_out: np.ndarray,
    log_out: np.ndarray,
    energy_out: np.ndarray,
) -> None:
    """Target features of spectra spec_ri `[B, 2F]`: mag_out, log_out `[B, F]`, energy_out `[B]` (`_row_targets`)."""
    n_values = mag_out.shape[1]
    scratch = np.empty(n_values, np.float32)
    mantissa = np.empty(n_values, np.int32)
    exponent = np.empty(n_values, np.float32)
    for row in range(spec_ri.shape[0]):
        energy_out[row] = _row_targets(
            spec_ri[row],
            mag_out[row],
            log_out[row],
            np.float32(sqrt_eps),
            np.float32(log_floor),
            scratch,
            mantissa,
            exponent,
        )


@numba.njit(**_JIT)
def stft_targets(
    audio: np.ndarray,
    window: np.ndarray,
    sqrt_eps: float,
    log_floor: float,
    mag_out: np.ndarray,
    log_out: np.ndarray,
    energy_out: np.ndarray,
) -> None:
    """`spectrum_targets` of the rows' STFTs (`stft_row`, transformed and used while in cache): audio
    `[B, N]`, mag_out and log_out `[B, frames * bins]`, energy_out `[B]`."""
    size = window.shape[0]
    n_frames_ = mag_out.shape[1] // (size // 2 + 1)
    frames = np.empty((n_frames_, size), np.float32)
    spec = np.empty((n_frames_, size // 2 + 1), np.complex64)
    spec_ri = spec.reshape(-1).view(np.float32)
    n_values = mag_out.shape[1]
    scratch = np.empty(n_values, np.float32)
    mantissa = np.empty(n_values, np.int32)
    exponent = np.empty(n_values, np.float32)
    for row in range(audio.shape[0]):
        stft_row(audio[row], window, frames, spec)
        energy_out[row] = _row_targets(
            spec_ri,
            mag_out[row],
            log_out[row],
            np.float32(sqrt_eps),
            np.float32(log_floor),
            scratch,
            mantissa,
            exponent,
        )
