"""Numba kernels of the file face: a chunk of frames from the whole signal, three FFTs per frame.

Input / output: numpy arrays owned by `features.offline.ChunkAnalyzer` (allocated once per analyser).
Per chunk of `count` frames:
- `prepare_frames`: cut the frames straight from the signal (zeros before its start and past its end,
  NaN -> 0, +-Inf -> +-1, clamp), remove each frame's mean (YIN's frame) and copy YIN's head, float32
  rows ready for one batched rfft, plus per-frame statistics in float64;
- `cross_spectra`: YIN's cross spectrum conj(H) X from those rffts (for one batched irfft);
- `describe_frames`: per frame, the Hann-windowed spectrum from the mean-removed frame's spectrum (the
  3-tap kernel of `stream_kernels.spectra`), then `stream_kernels.finish` (loudness, spectral shape,
  MFCC, chroma, YIN): the streaming face's own formulas, in float64.
The Hann spectrum comes from YIN's rfft, so a frame costs three FFTs (rfft x, rfft head, irfft) instead of
four. Every frame is computed on its own: chunk sizes and threads cannot change a value.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_FAST = {"reassoc", "contract", "arcp", "nsz"}  # as stream_kernels: no 'nnan' / 'ninf'


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def prepare_frames(
    audio: np.ndarray,
    first: int,
    count: int,
    hop: int,
    width: int,
    max_abs: float,
    rows: np.ndarray,
    stats: np.ndarray,
) -> None:
    """Frames [first, first + count) of float32 `audio` -> `rows[:count]` (mean removed), `rows[count:2 count]`
    (their first `width` samples, then zeros) and `stats[:count]` = (mean square, peak, mean square without
    the mean, mean). Frame `f` is the window ending at sample `(f + 1) hop`; samples outside `audio` are 0.

    A frame inside the signal whose |samples| are all <= max_abs (the common case) is read in vectorizable
    loops; any other frame is copied sample by sample with the repairs of `stream_kernels.push_block`."""
    n = rows.shape[1]
    size = audio.shape[0]
    bits = audio.view(np.int32)  # |v| of a float32 as its bits without the sign: ordered like |v| (NaN above inf)
    limit = np.empty(1, dtype=np.float32)
    limit[0] = min(max_abs, 3.0e38)
    limit_bits = limit.view(np.int32)[0]
    peak_bits = np.empty(1, dtype=np.int32)
    peak_value = peak_bits.view(np.float32)
    for i in range(count):
        start = (first + i + 1) * hop - n
        x = rows[i]
        total = 0.0
        square = 0.0
        inside = start >= 0 and start + n <= size
        if inside:
            largest = 0
            for j in range(n):
                largest = max(largest, bits[start + j] & 0x7FFFFFFF)
            inside = largest <= limit_bits
        if inside:
            for j in range(n):
                v = float(audio[start + j])
                total += v
                square += v * v
            peak_bits[0] = largest
            peak = float(peak_value[0])
            mean = total / n
            for j in range(n):
                x[j] = float(audio[start + j]) - mean
        else:
            peak = 0.0
            for j in range(n):
                p = start + j
                v = 0.0
                if 0 <= p < size:
                    v = float(audio[p])
                    if v != v:
                        v = 0.0
                    elif v > max_abs:
                        v = max_abs if v != math.inf else 1.0
                    elif v < -max_abs:
                        v = -max_abs if v != -math.inf else -1.0
                x[j] = v
                total += v
                square += v * v
                peak = max(peak, abs(v))
            mean = total / n
            for j in range(n):
                x[j] = float(x[j]) - mean
        centered = 0.0
        for j in range(n):
            v = float(x[j])
            centered += v * v
        head = rows[count + i]
        for j in range(width):
            head[j] = x[j]
        for j in range(width, n):
            head[j] = 0.0
        stats[i, 0] = square / n
        stats[i, 1] = peak
        stats[i, 2] = centered / n
        stats[i, 3] = mean


@numba.njit(cache=True, nogil=True)
def cross_spectra(spectra: np.ndarray, count: int, cross: np.ndarray) -> None:
    """`cross[i] = conj(spectra[count + i]) * spectra[i]`: YIN's correlation spectrum of frame i (`cross` may be
    `spectra[count:]` itself)."""
    for i in range(count):
        x = spectra[i]
        h = spectra[count + i]
        c = cross[i]
        for k in range(x.shape[0]):
            c[k] = h[k].conjugate() * x[k]


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def windowed_power(x_spec: np.ndarray, mean: float, n: int, scale2: float, power: np.ndarray) -> None:
    """|Hann-windowed spectrum of the raw frame|^2 * scale2, from the rfft of the mean-removed frame: the
    3-tap kernel of `stream_kernels.spectra` (0.5 X[k] - 0.25 (X[k-1] + X[k+1]), DC and Hermitian edges)."""
    nb = x_spec.shape[0]  # >= 3 (window >= 4)
    dc = n * mean
    for k in range(1, nb - 1):
        a, b, c = x_spec[k - 1], x_spec[k], x_spec[k + 1]
        re = 0.5 * float(b.real) - 0.25 * (float(a.real) + float(c.real))
        im = 0.5 * float(b.imag) - 0.25 * (float(a.imag) + float(c.imag))
        power[k] = (re * re + im * im) * scale2
    b1, b2 = x_spec[0], x_spec[1]
    re = 0.5 * float(b2.real) - 0.25 * (float(b1.real) + float(x_spec[2].real) + dc)
    im = 0.5 * float(b2.imag) - 0.25 * (float(b1.imag) + float(x_spec[2].imag))
    power[1] = (re * re + im * im) * scale2
    re = 0.5 * (float(b1.real) + dc) - 0.5 * float(b2.real)  # X[-1] = conj(X[1]); X[0] is real
    power[0] = re * re * scale2
    last = nb - 1
    mirror = n - last - 1  # X[last + 1] = conj(X[mirror]) (Hermitian symmetry)
    a, b, c = x_spec[last - 1], x_spec[last], x_spec[mirror]
    re = 0.5 * float(b.real) - 0.25 * (float(a.real) + float(c.real) + (dc if mirror == 0 else 0.0))
    im = 0.5 * float(b.imag) - 0.25 * (float(a.imag) - float(c.imag))
    power[last] = (re * re + im * im) * scale2


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def spectral_frames(
    spectra: np.ndarray,
    stats: np.ndarray,
    count: int,
    window: int,
    scale2: float,
    kweight: np.ndarray,
    band_floor2: float,
    freqs_khz: np.ndarray,
    rolloff_0to1: float,
    floor_power: float,
    floor_amp: float,
    loudness_gain: float,
    bands: np.ndarray,
    out: np.ndarray,
) -> None:
    """Frames [0, count) from the rffts of their mean-removed samples (`spectra[:count]`) and `stats`: the
    loudness group and spectral shape -> `out[i, 0:10]`, the band powers (float32) -> `bands[i]` (for the
    mel / chroma banks, applied to the whole chunk at once by a matmul)."""
    n_band = bands.shape[1]
    db = 10.0 / math.log(10.0)
    power = np.empty(spectra.shape[1])
    mag = np.empty(n_band)
    for i in range(count):
        o = out[i]
        windowed_power(spectra[i], stats[i, 3], window, scale2, power)
        kms = 0.0
        for k in range(power.shape[0]):
            kms += kweight[k] * power[k]
        o[0] = db * math.log(kms * loudness_gain + floor_power)
        o[1] = db * math.log(stats[i, 0] + floor_power)
        o[2] = 2.0 * db * math.log(stats[i, 1] + floor_amp)
        _spectral_shape(power, n_band, band_floor2, freqs_khz, rolloff_0to1, mag, o)
        for k in range(n_band):
            bands[i, k] = power[k]


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def finish_frames(
    banks: np.ndarray,
    corr: np.ndarray,
    rows: np.ndarray,
    stats: np.ndarray,
    count: int,
    dct: np.ndarray,
    floor_power: float,
    tau_min: int,
    tau_max: int,
    width: int,
    threshold: float,
    sample_rate_hz: float,
    out: np.ndarray,
) -> None:
    """Frames [0, count): MFCC from the mel powers' logs (`banks[i, :n_mels]` = ln(power + floor_power)),
    chroma from the pitch-class powers (`banks[i, n_mels:]`), and YIN from the correlations `corr` ->
    `out[i, 10:]`."""
    n_mels = dct.shape[1]
    n_mfcc = dct.shape[0]
    base = 10 + n_mfcc
    db = 10.0 / math.log(10.0)
    mel_db = np.empty(n_mels)
    cmnd = np.empty(tau_max + 1)
    for i in range(count):
        o = out[i]
        for j in range(n_mels):
            mel_db[j] = db * float(banks[i, j])
        for c in range(n_mfcc):
            acc = 0.0
            for j in range(n_mels):
                acc += dct[c, j] * mel_db[j]
            o[10 + c] = acc
        top = 0.0
        for c in range(12):
            top = max(top, float(banks[i, n_mels + c]))
        for c in range(12):
            o[base + c] = float(banks[i, n_mels + c]) / (top + floor_power)
        if stats[i, 2] <= floor_power:
            o[base + 12] = 0.0
            o[base + 13] = 0.0
        else:
            pitch, confidence = _yin(
                corr[i], rows[i], floor_power, tau_min, tau_max, width, threshold, sample_rate_hz, cmnd
            )
            o[base + 12] = pitch
            o[base + 13] = confidence


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _spectral_shape(
    power: np.ndarray,
    n_band: int,
    band_floor2: float,
    freqs_khz: np.ndarray,
    rolloff_0to1: float,
    mag: np.ndarray,
    o: np.ndarray,
) -> None:
    """centroid, spread (Hz), skewness, kurtosis, rolloff (Hz), flatness, crest (dB) -> o[3:10]; `mag` = the
    floored band magnitudes."""
    db = 10.0 / math.log(10.0)
    total = 0.0
    first = 0.0
    for k in range(n_band):  # kept free of the maximum below: this loop vectorizes (sqrt included)
        m = math.sqrt(power[k] + band_floor2)
        mag[k] = m
        total += m
        first += m * freqs_khz[k]
    loudest = 0.0
    for k in range(n_band):
        loudest = max(loudest, power[k])
    biggest = math.sqrt(loudest + band_floor2)  # sqrt is monotonic and exactly rounded: the largest magnitude
    # sum of logs as logs of products of 16 magnitudes (each in [1e-9, 1e3]: no under/overflow)
    log_sum = 0.0
    for start in range(0, n_band, 16):
        product = 1.0
        for k in range(start, min(start + 16, n_band)):
            product *= mag[k]
        log_sum += math.log(product)
    centroid = first / total
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    for k in range(n_band):
        d = freqs_khz[k] - centroid
        d2 = d * d
        m2 += mag[k] * d2
        m3 += mag[k] * d2 * d
        m4 += mag[k] * d2 * d2
    var = m2 / total
    spread = math.sqrt(var)
    # rolloff: the first bin where the running sum reaches the target, found 16 bins at a time
    target = rolloff_0to1 * total
    rolloff = freqs_khz[n_band - 1]
    bin_khz = freqs_khz[1] - freqs_khz[0] if n_band > 1 else 0.0
    cum = 0.0
    for start in range(0, n_band, 16):
        stop = min(start + 16, n_band)
        block = 0.0
        for k in range(start, stop):
            block += mag[k]
        if cum + block < target and stop < n_band:
            cum += block
            continue
        for k in range(start, stop):
            cum += mag[k]
            if cum >= target:
                rolloff = freqs_khz[k] if k == 0 else freqs_khz[k] - bin_khz * (cum - target) / mag[k]
                break
        break
    mean = total / n_band
    o[3] = 1000.0 * centroid
    o[4] = 1000.0 * spread
    o[5] = m3 / total / (var * spread)
    o[6] = m4 / total / (var * var)
    o[7] = 1000.0 * rolloff
    o[8] = 2.0 * db * (log_sum / n_band - math.log(mean))
    o[9] = 2.0 * db * (math.log(biggest) - math.log(mean))


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _yin(
    corr: np.ndarray,
    x: np.ndarray,
    floor_power: float,
    tau_min: int,
    tau_max: int,
    width: int,
    threshold: float,
    sample_rate_hz: float,
    cmnd: np.ndarray,
) -> tuple[float, float]:
    """`stream_kernels.yin_pitch` of a voiced mean-removed frame `x`: the lag energies as two running sums
    (the samples leaving and entering the integration window) instead of a prefix sum over the frame, and
    the normalized difference computed only up to the first trough below the threshold."""
    head = 0.0
    for j in range(width):
        head += float(x[j]) * float(x[j])
    eps = 2.0 * width * floor_power
    leaving = 0.0  # sum of x[:tau]^2
    entering = 0.0  # sum of x[width : width + tau]^2
    running = 0.0
    cmnd[0] = 1.0
    best = -1
    for tau in range(tau_max + 1):
        d = max(0.0, head - leaving + entering + head - 2.0 * float(corr[tau]))
        running += d
        if tau > 0:
            cmnd[tau] = (d * tau + eps * tau) / max(running + eps * tau, 1e-30)
        if tau < tau_max:
            a = float(x[tau])
            b = float(x[width + tau])
            leaving += a * a
            entering += b * b
        t = tau - 1  # its neighbours are known now: is it the first trough below the threshold?
        if tau_min <= t and cmnd[t] < threshold and cmnd[t] < cmnd[t - 1] and cmnd[t] <= cmnd[tau]:
            best = t
            break  # the lags past it cannot change the result
    if best < 0:  # no trough below the threshold: the global minimum
        best = tau_min
        for tau in range(tau_min, tau_max):
            if cmnd[tau] < cmnd[best]:
                best = tau
    y0 = cmnd[best - 1]
    y1 = cmnd[best]
    y2 = cmnd[best + 1]
    curve = y0 - 2.0 * y1 + y2
    shift = 0.0
    if curve > 1e-12:
        shift = min(1.0, max(-1.0, 0.5 * (y0 - y2) / curve))
    return sample_rate_hz / (best + shift), min(1.0, max(0.0, 1.0 - y1))
