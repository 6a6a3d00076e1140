"""Numba kernels of the streaming face: everything per block, on preallocated buffers.

Input / output: numpy arrays owned by `features.stream.StreamingDescriptors` (nothing is allocated here).
The math is `features.batch` / `features.pitch` (torch) written out as loops, in float64:
- `repaired`: one input sample made safe (NaN -> 0, +-Inf -> +-1, clamp), shared by the two below;
- `push_block`: copy a block into the ring (repaired), return the new position;
- `resample_into_ring`: the same for a block at another rate, through `features.stream_resample`'s
  polyphase filter (input samples repaired, outputs clamped);
- `prepare_frame`: unroll the ring into the frame, make YIN's mean-removed frame and head, frame stats;
- `push_and_prepare`: the two above in one call (the streaming face's per-block entry);
- `spectra`: the Hann-windowed spectrum (from the plain one) and YIN's cross spectrum (before the irfft);
- `transforms`: the rfft of the frame and YIN's head, `spectra`, the irfft of the cross spectrum;
- `finish`: power spectrum, loudness group, spectral shape, YIN and (`extras`) MFCC and chroma -> the
  descriptor vector; `finish_extras`: the MFCC and chroma alone, from the power spectrum `finish` left.
Every constant travels as an argument (numba's on-disk cache cannot hold module-level arrays).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import rocket_fft

_FAST = {"reassoc", "contract", "arcp", "nsz"}  # no 'nnan' / 'ninf': inputs are sanitized, results stay honest


@numba.njit(cache=True, nogil=True, inline="always")
def repaired(v: float, max_abs: float) -> float:
    """An input sample made safe: NaN -> 0, +-Inf -> +-1, anything else clamped to +-max_abs."""
    if v != v:
        return 0.0
    if v > max_abs:
        return max_abs if v != math.inf else 1.0
    if v < -max_abs:
        return -max_abs if v != -math.inf else -1.0
    return v


@numba.njit(cache=True, nogil=True)
def push_block(ring: np.ndarray, pos: int, block: np.ndarray, max_abs: float) -> int:
    n = ring.shape[0]
    length = block.shape[0]
    start = length - n if length > n else 0
    for i in range(start, length):
        ring[pos] = repaired(float(block[i]), max_abs)
        pos += 1
        if pos == n:
            pos = 0
    return pos


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def resample_into_ring(
    block: np.ndarray,
    max_abs: float,
    taps: np.ndarray,
    down: int,
    history: np.ndarray,
    counters: np.ndarray,
    ring: np.ndarray,
    ring_pos: int,
) -> int:
    """Resample `block` into `ring` from `ring_pos` on (`features.stream_resample`: the taps, the state);
    returns the new ring position.

    `history` (2 * P float64) holds the last P inputs twice over, so that the newest P are one slice;
    `counters` (int64): [history write position, inputs consumed, the next output's upsampled time]."""
    up, per_phase = taps.shape
    n_ring = ring.shape[0]
    write = counters[0]
    n_in = counters[1]
    t = counters[2]
    for i in range(block.shape[0]):
        v = repaired(float(block[i]), max_abs)
        history[write] = v
        history[write + per_phase] = v
        write += 1
        if write == per_phase:
            write = 0
        n_in += 1
        limit = n_in * up  # outputs whose newest input has arrived: t // up <= n_in - 1
        while t < limit:
            row = taps[t % up]
            newest = history[write : write + per_phase]  # the newest P inputs, oldest first
            acc = 0.0
            for j in range(per_phase):
                acc += row[j] * newest[j]
            if acc > max_abs:
                acc = max_abs
            elif acc < -max_abs:
                acc = -max_abs
            ring[ring_pos] = acc
            ring_pos += 1
            if ring_pos == n_ring:
                ring_pos = 0
            t += down
    counters[0] = write
    counters[1] = n_in
    counters[2] = t
    return ring_pos


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def prepare_frame(
    ring: np.ndarray,
    pos: int,
    frame: np.ndarray,
    yin_x: np.ndarray,
    yin_head: np.ndarray,
    width: int,
    stats: np.ndarray,
) -> None:
    n = ring.shape[0]
    older = n - pos  # the ring from pos on is the oldest audio
    for i in range(older):
        frame[i] = ring[pos + i]
    for i in range(pos):
        frame[older + i] = ring[i]
    total = 0.0
    square = 0.0
    peak = 0.0
    for i in range(n):
        v = frame[i]
        total += v
        square += v * v
        peak = max(peak, abs(v))
    mean = total / n
    stats[3] = mean
    centered = 0.0
    for i in range(n):
        v = frame[i] - mean
        yin_x[i] = v
        centered += v * v
    for i in range(width):
        yin_head[i] = yin_x[i]
    stats[0] = square / n
    stats[1] = peak
    stats[2] = centered / n


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def push_and_prepare(
    ring: np.ndarray,
    pos: int,
    block: np.ndarray,
    max_abs: float,
    frame: np.ndarray,
    yin_x: np.ndarray,
    yin_head: np.ndarray,
    width: int,
    stats: np.ndarray,
) -> int:
    """`push_block` then `prepare_frame` (one dispatch instead of two); returns the new position."""
    pos = push_block(ring, pos, block, max_abs)
    prepare_frame(ring, pos, frame, yin_x, yin_head, width, stats)
    return pos


@numba.njit(cache=True, nogil=True)
def spectra(x_spec: np.ndarray, head_spec: np.ndarray, windowed_spec: np.ndarray, mean: float, n: int) -> None:
    """From the rffts of the mean-removed frame and of YIN's head: the Hann-windowed spectrum of the raw
    frame (periodic Hann = a 3-tap kernel in frequency: 0.5 X[k] - 0.25 (X[k-1] + X[k+1])) and, in
    place of the head's spectrum, YIN's cross spectrum conj(H) X."""
    nb = x_spec.shape[0]  # >= 3 (window >= 4)
    dc = n * mean  # the raw frame's spectrum is x_spec plus dc at bin 0
    for k in range(1, nb - 1):
        windowed_spec[k] = 0.5 * x_spec[k] - 0.25 * (x_spec[k - 1] + x_spec[k + 1])
    windowed_spec[1] -= 0.25 * dc
    windowed_spec[0] = 0.5 * (x_spec[0] + dc) - 0.5 * x_spec[1].real  # X[-1] = conj(X[1])
    last = nb - 1  # its right neighbour X[last + 1] = conj(X[n - last - 1]) (Hermitian symmetry)
    mirror = n - last - 1
    right = x_spec[mirror].conjugate() + (dc if mirror == 0 else 0.0)
    windowed_spec[last] = 0.5 * x_spec[last] - 0.25 * (x_spec[last - 1] + right)
    for k in range(nb):
        head_spec[k] = head_spec[k].conjugate() * x_spec[k]


@numba.njit(cache=True, nogil=True)
def transforms(
    yin_pair: np.ndarray,
    spec_pair: np.ndarray,
    windowed_spec: np.ndarray,
    mean: float,
    corr: np.ndarray,
    pair_axes: np.ndarray,
    row_axes: np.ndarray,
) -> None:
    """The block's FFTs and `spectra` between them, in one call: spec_pair `[2, n/2 + 1]` = rfft of
    yin_pair `[2, n]` (the mean-removed frame and YIN's head), `spectra`, then corr `[n]` = irfft of the
    cross spectrum (spec_pair[1]). DUCC0's transforms through `rocket-fft` (`numpy.fft`'s values to
    float64 rounding): numpy's Python-level FFT wrappers cost more than the transforms of 1,024 points
    (~25 µs each warm, ~190 µs cold after the live worker's idle wait). pair_axes = [1], row_axes = [0]."""
    rocket_fft.r2c(yin_pair, spec_pair, pair_axes, True, 1.0, 1)
    spectra(spec_pair[0], spec_pair[1], windowed_spec, mean, yin_pair.shape[1])
    rocket_fft.c2r(spec_pair[1], corr, row_axes, False, 1.0 / corr.shape[0], 1)


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def finish(
    spec: np.ndarray,
    scale2: float,
    kweight: np.ndarray,
    stats: np.ndarray,
    n_band: int,
    band_floor2: float,
    freqs_khz: np.ndarray,
    rolloff_0to1: float,
    mel: np.ndarray,
    mel_bounds: np.ndarray,
    dct: np.ndarray,
    chroma: np.ndarray,
    floor_power: float,
    floor_amp: float,
    loudness_gain: float,
    corr: np.ndarray,
    yin_x: np.ndarray,
    tau_min: int,
    tau_max: int,
    width: int,
    threshold: float,
    sample_rate_hz: float,
    power: np.ndarray,
    mag: np.ndarray,
    mel_db: np.ndarray,
    cs: np.ndarray,
    cmnd: np.ndarray,
    out: np.ndarray,
    extras: bool,
) -> None:
    db = 10.0 / math.log(10.0)
    # -- loudness group
    kms = 0.0
    for k in range(spec.shape[0]):
        p = (spec[k].real * spec[k].real + spec[k].imag * spec[k].imag) * scale2
        power[k] = p
        kms += kweight[k] * p
    out[0] = db * math.log(kms * loudness_gain + floor_power)
    out[1] = db * math.log(stats[0] + floor_power)
    out[2] = 2.0 * db * math.log(stats[1] + floor_amp)
    # -- spectral shape (FluCoMa), frequencies in kHz
    total = 0.0
    first = 0.0
    log_sum = 0.0
    product = 1.0  # sum of logs as the log of products of 16 magnitudes (in [1e-9, 1e3]: no under/overflow)
    biggest = 0.0
    for k in range(n_band):
        m = math.sqrt(power[k] + band_floor2)
        mag[k] = m
        total += m
        first += m * freqs_khz[k]
        product *= m
        if (k & 15) == 15:
            log_sum += math.log(product)
            product = 1.0
        if m > biggest:
            biggest = m
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
    target = rolloff_0to1 * total
    cum = 0.0
    rolloff = freqs_khz[n_band - 1]
    bin_khz = freqs_khz[1] - freqs_khz[0] if n_band > 1 else 0.0
    for k in range(n_band):
        cum += mag[k]
        if cum >= target:
            rolloff = freqs_khz[k] if k == 0 else freqs_khz[k] - bin_khz * (cum - target) / mag[k]
            break
    mean = total / n_band
    out[3] = 1000.0 * centroid
    out[4] = 1000.0 * spread
    out[5] = m3 / total / (var * spread)
    out[6] = m4 / total / (var * var)
    out[7] = 1000.0 * rolloff
    out[8] = 2.0 * db * (log_sum / n_band - math.log(mean))
    out[9] = 2.0 * db * (math.log(biggest) - math.log(mean))
    if extras:
        finish_extras(power, mel, mel_bounds, dct, chroma, floor_power, n_band, mel_db, out)
    base = 10 + dct.shape[0]
    # -- YIN
    pitch, confidence = yin_pitch(
        corr, yin_x, stats[2], floor_power, tau_min, tau_max, width, threshold, sample_rate_hz, cs, cmnd
    )
    out[base + 12] = pitch
    out[base + 13] = confidence


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def finish_extras(
    power: np.ndarray,
    mel: np.ndarray,
    mel_bounds: np.ndarray,
    dct: np.ndarray,
    chroma: np.ndarray,
    floor_power: float,
    n_band: int,
    mel_db: np.ndarray,
    out: np.ndarray,
) -> None:
    """MFCC (out[10 : 10 + n_mfcc]) and chroma (the next 12) from the power spectrum `finish` computed."""
    db = 10.0 / math.log(10.0)
    n_mels = mel.shape[0]
    for j in range(n_mels):
        acc = 0.0
        for k in range(mel_bounds[j, 0], mel_bounds[j, 1]):  # triangles: only their own bins
            acc += mel[j, k] * power[k]
        mel_db[j] = db * math.log(acc + floor_power)
    for c in range(dct.shape[0]):
        acc = 0.0
        for j in range(n_mels):
            acc += dct[c, j] * mel_db[j]
        out[10 + c] = acc
    base = 10 + dct.shape[0]
    top = 0.0
    for c in range(12):
        acc = 0.0
        for k in range(n_band):
            acc += chroma[c, k] * power[k]
        out[base + c] = acc
        if acc > top:
            top = acc
    for c in range(12):
        out[base + c] /= top + floor_power


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def yin_pitch(
    corr: np.ndarray,
    yin_x: np.ndarray,
    centered_ms: float,
    floor_power: float,
    tau_min: int,
    tau_max: int,
    width: int,
    threshold: float,
    sample_rate_hz: float,
    cs: np.ndarray,
    cmnd: np.ndarray,
) -> tuple[float, float]:
    """(pitch_hz, confidence) of one mean-removed frame from its correlation `corr[tau]` (`features.pitch`)."""
    n = yin_x.shape[0]
    cs[0] = 0.0
    for j in range(n):
        cs[j + 1] = cs[j] + yin_x[j] * yin_x[j]
    eps = 2.0 * width * floor_power
    running = 0.0
    cmnd[0] = 1.0
    for tau in range(tau_max + 1):
        d = cs[width + tau] - cs[tau] + cs[width] - 2.0 * corr[tau]
        if d < 0.0:
            d = 0.0
        running += d
        if tau > 0:
            cmnd[tau] = (d * tau + eps * tau) / max(running + eps * tau, 1e-30)
    best = -1
    low = tau_min
    for tau in range(tau_min, tau_max):
        if cmnd[tau] < cmnd[low]:
            low = tau
        if best < 0 and cmnd[tau] < threshold and cmnd[tau] < cmnd[tau - 1] and cmnd[tau] <= cmnd[tau + 1]:
            best = tau
    if best < 0:
        best = low
    y0 = cmnd[best - 1]
    y1 = cmnd[best]
    y2 = cmnd[best + 1]
    curve = y0 - 2.0 * y1 + y2
    shift = 0.0
    if curve > 1e-12:
        shift = min(1.0, max(-1.0, 0.5 * (y0 - y2) / curve))
    if centered_ms <= floor_power:
        return 0.0, 0.0
    return sample_rate_hz / (best + shift), min(1.0, max(0.0, 1.0 - y1))


@numba.njit(cache=True, nogil=True)
def yin_frames(
    corr: np.ndarray,
    yin_x: np.ndarray,
    floor_power: float,
    tau_min: int,
    tau_max: int,
    width: int,
    threshold: float,
    sample_rate_hz: float,
    out: np.ndarray,
) -> None:
    """`yin_pitch` for every row of `[T, ...]` matrices (the offline face); `out` is `[T, 2]`."""
    n = yin_x.shape[1]
    cs = np.empty(n + 1)
    cmnd = np.empty(tau_max + 1)
    row = np.empty(n)
    lags = np.empty(tau_max + 1)
    for t in range(yin_x.shape[0]):
        square = 0.0
        for j in range(n):
            v = float(yin_x[t, j])
            row[j] = v
            square += v * v
        for j in range(tau_max + 1):
            lags[j] = corr[t, j]
        pitch, confidence = yin_pitch(
            lags, row, square / n, floor_power, tau_min, tau_max, width, threshold, sample_rate_hz, cs, cmnd
        )
        out[t, 0] = pitch
        out[t, 1] = confidence
