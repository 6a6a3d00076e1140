"""What `features.loss.PerceptualLoss` computes of a batch of renders before scoring them, and the
gradient-free (numba) helpers of its fast path.

Input: sanitized audio `[B, N]` and its STFTs. Output: `RenderAnalysis` (the STFTs, the analysis
frames, their mel band power, the clip loudness and the spectral centroids), shared by the loss and
other features of the same renders (the matching agent's observation), plus small helpers: the
geometry that lets the analysis frames be frames of one of the loss's STFTs (`shared_stft`), power
spectra, the kernel log, penalty statistics and sanitizing without a copy.

Fast path: float32 CPU tensors and no gradient wanted (`numba_ok`); then the power of the analysis
frames, the centroids, the log and the penalties come from `features.loss_kernels` (the same values
as the torch expressions to float32 rounding: sums are accumulated in float64 there), and so do the
STFTs, through per-row passes that use each row's spectrum while it is in cache: `stft_analysis`
(the analysis STFT with its frames' bands and centroids), `target_spectra` (a target's magnitudes,
logs and energies) and `mr_stft_fast` (the MR-STFT term).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from features import batch, loss_kernels
from features.dsp import LOUDNESS_OFFSET_DB, MAX_ABS_SAMPLE, AnalysisPlan

LOG_FLOOR_POWER = 1e-9  # -90 dB: log-magnitudes of silent bins meet here
SQRT_EPS = 1e-12  # keeps d sqrt(power) / d power finite on silent bins
_LOUDNESS_GAIN = 10.0 ** (LOUDNESS_OFFSET_DB / 10.0)  # as features.batch.clip_loudness_frames
_DB = 10.0 / math.log(10.0)


@dataclass(frozen=True, eq=False)
class RenderAnalysis:
    """Renders' analysis (`PerceptualLoss.analyze`): share it with other features of the same renders
    (e.g. an observation), then pass it to `PerceptualLoss.compare`."""

    frames: batch.Frames  # the analysis frames (`features.batch.analyze_frames`'s frames and power)
    spectra: tuple[torch.Tensor | None, ...]  # complex [B, frames, bins] per loss fft size, None (or an
    # empty tuple) where analysis did not compute it (then `compare` does, one resolution at a time)
    mel_power: torch.Tensor  # [B, T, n_mels]: band power of the frames @ mel filters
    loudness_lufs: torch.Tensor  # [B] clip loudness (`features.batch.clip_loudness_frames`)
    centroid_hz: torch.Tensor | None  # [B, T] spectral centroid per frame (fast path only, else None)
    clip_centroid_hz: torch.Tensor | None  # [B] centroid of the frame-averaged spectrum (fast path only)


def numba_ok(*tensors: torch.Tensor) -> bool:
    """The fast path: float32 (complex64) CPU tensors and no gradient wanted of any of them."""
    if any(t.device.type != "cpu" or t.dtype not in (torch.float32, torch.complex64) for t in tensors):
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def sanitize(audio: torch.Tensor) -> torch.Tensor:
    """`features.batch.sanitize`, skipped (the same tensor back) for clean float32 CPU audio wanting no
    gradient: one numba pass over the samples instead of two torch ops, each with a copy."""
    if numba_ok(audio) and audio.is_contiguous() and loss_kernels.is_clean(audio.detach().numpy(), MAX_ABS_SAMPLE):
        return audio
    return batch.sanitize(audio)


def shared_stft(plan: AnalysisPlan, fft_sizes: tuple[int, ...], n_samples: int) -> tuple[int, int, int, int] | None:
    """(fft size index, first STFT frame, frame step, analysis frames) when the analysis frames are
    frames of one of the loss's centred STFTs (hop size / 4; the same window: both are the periodic
    Hann / its sum, rounded from float64), else None. 16 kHz defaults: every other frame of the 1024."""
    if plan.window not in fft_sizes:
        return None
    hop = plan.window // 4  # the STFT's
    offset = plan.hop - plan.window // 2  # analysis frame m is centred at (m + 1) * plan.hop - window / 2
    if offset % hop or plan.hop % hop or offset < 0:
        return None
    count = batch.n_frames(n_samples, plan)
    first, step = offset // hop, plan.hop // hop
    if first + step * (count - 1) > n_samples // hop:  # past the STFT's last frame
        return None
    return fft_sizes.index(plan.window), first, step, count


def frames_from_stft(
    audio: torch.Tensor, spec: torch.Tensor, plan: AnalysisPlan, const: batch.Constants, geometry: tuple[int, int, int]
) -> tuple[batch.Frames, torch.Tensor | None, torch.Tensor | None]:
    """(`batch.Frames` of `audio` whose power is that of STFT frames first, first + step, ... (`geometry` =
    (first, step, count)), on the fast path also their mel band power and K-weighted mean squares (one
    numba pass, `loss_kernels.frame_bands`), else None). The raw frames are a view of the padded audio,
    cut as `features.batch.analyze_frames` cuts them."""
    first, step, count = geometry
    frames = _raw_frames(audio, plan, count)
    if not numba_ok(spec):
        out = power(spec[:, first : first + step * (count - 1) + 1 : step])
        return batch.Frames(plan=plan, const=const, frames=frames, power=out), None, None
    n_rows, _, n_bins = spec.shape
    out = torch.empty(n_rows, count, n_bins)
    mel_power = torch.empty(n_rows, count, plan.mel.shape[0])
    kms = torch.empty(n_rows, count)
    mel, mel_first, mel_stop = _sparse_mel(plan, const)
    loss_kernels.frame_bands(
        torch.view_as_real(spec).numpy(),
        first,
        step,
        mel,
        mel_first,
        mel_stop,
        const.kweight_ms.numpy(),
        out.numpy(),
        mel_power.numpy(),
        kms.numpy(),
    )
    return batch.Frames(plan=plan, const=const, frames=frames, power=out), mel_power, kms


def stft_analysis(
    audio: torch.Tensor,
    window: torch.Tensor,
    plan: AnalysisPlan,
    const: batch.Constants,
    geometry: tuple[int, int, int],
) -> RenderAnalysis:
    """Fast path (`numba_ok`): the analysis of `audio` whose frames are frames of its STFT with `window`
    (`shared_stft`'s `geometry`), in one per-row numba pass (`loss_kernels.stft_frames`): the STFT, the
    frames' power, mel band power, K-weighted mean squares and centroids. The same values as
    `frames_from_stft` of `loss_kernels.stft`'s STFT, then `analysis_of`; `spectra` holds only this STFT
    (the caller places it)."""
    first, step, count = geometry
    n_rows, n_samples = audio.shape
    size = window.shape[0]
    spec = torch.empty(n_rows, loss_kernels.n_frames(n_samples, size), size // 2 + 1, dtype=torch.complex64)
    power = torch.empty(n_rows, count, size // 2 + 1)
    mel_power = torch.empty(n_rows, count, plan.mel.shape[0])
    kms = torch.empty(n_rows, count)
    centroid = torch.empty(n_rows, count)
    clip_centroid = torch.empty(n_rows)
    mel, mel_first, mel_stop = _sparse_mel(plan, const)
    loss_kernels.stft_frames(
        audio.detach().contiguous().numpy(),
        window.numpy(),
        first,
        step,
        mel,
        mel_first,
        mel_stop,
        const.kweight_ms.numpy(),
        const.freqs_khz.numpy(),
        plan.band_floor_amp**2,
        spec.numpy(),
        power.numpy(),
        mel_power.numpy(),
        kms.numpy(),
        centroid.numpy(),
        clip_centroid.numpy(),
    )
    fr = batch.Frames(plan=plan, const=const, frames=_raw_frames(audio, plan, count), power=power)
    loudness = _DB * torch.log(kms.mean(-1) * _LOUDNESS_GAIN + plan.floor_power)  # as analysis_of
    return RenderAnalysis(fr, (spec,), mel_power, loudness, centroid, clip_centroid)


def _raw_frames(audio: torch.Tensor, plan: AnalysisPlan, count: int) -> torch.Tensor:
    """The analysis frames' samples `[B, count, window]`: a view of the padded audio, cut as
    `features.batch.analyze_frames` cuts them."""
    left = plan.window - plan.hop
    total = (count - 1) * plan.hop + plan.window
    padded = F.pad(audio, (left, max(0, total - left - audio.shape[-1])))[..., :total]
    return padded.unfold(-1, plan.window, plan.hop)


@functools.lru_cache(maxsize=8)
def _mel_ranges(plan: AnalysisPlan) -> tuple[np.ndarray, np.ndarray]:
    """Per mel band, the first and one-past-last bin where its filter is nonzero."""
    nonzero = plan.mel != 0
    first = np.where(nonzero.any(1), nonzero.argmax(1), 0)
    stop = np.where(nonzero.any(1), plan.mel.shape[1] - nonzero[:, ::-1].argmax(1), 0)
    return first.astype(np.int64), stop.astype(np.int64)


def _sparse_mel(plan: AnalysisPlan, const: batch.Constants) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mel filters as the float32 `[n_mels, n_band]` the dense product uses, and their nonzero ranges."""
    first, stop = _mel_ranges(plan)
    return np.ascontiguousarray(const.mel_t.numpy().T), first, stop


def analysis_of(
    fr: batch.Frames,
    spectra: tuple[torch.Tensor | None, ...] = (),
    mel_power: torch.Tensor | None = None,
    kms: torch.Tensor | None = None,
) -> RenderAnalysis:
    """The analysis of frames: mel power and loudness (unless given: `frames_from_stft`'s), and on the
    fast path the centroids (one numba pass)."""
    if mel_power is None:
        mel_power = fr.power[..., : fr.plan.n_band] @ fr.const.mel_t
    if kms is None:
        loudness = batch.clip_loudness_frames(fr)
    else:  # clip_loudness_frames' formula on the given mean squares
        loudness = _DB * torch.log(kms.mean(-1) * _LOUDNESS_GAIN + fr.plan.floor_power)
    centroid, clip_centroid = None, None
    if numba_ok(fr.power):
        centroid, clip_centroid = centroids(fr, None)
    return RenderAnalysis(fr, spectra, mel_power, loudness, centroid, clip_centroid)


def centroids(fr: batch.Frames, gain2: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-frame `[B, T]`, clip `[B]` with the power gain) centroids in Hz (`loss_kernels.spectral_centroids`)."""
    n_rows = fr.power.shape[0]
    gain = torch.ones(n_rows) if gain2 is None else gain2.detach().float().contiguous()
    frame_hz, clip_hz = loss_kernels.spectral_centroids(
        fr.power.detach().contiguous().numpy(), fr.const.freqs_khz.numpy(), fr.plan.band_floor_amp**2, gain.numpy()
    )
    return torch.from_numpy(frame_hz), torch.from_numpy(clip_hz)


def analysis_rows(analysis: RenderAnalysis, rows: slice) -> RenderAnalysis:
    fr = analysis.frames
    return RenderAnalysis(
        frames=batch.Frames(plan=fr.plan, const=fr.const, frames=fr.frames[rows], power=fr.power[rows]),
        spectra=tuple(None if spec is None else spec[rows] for spec in analysis.spectra),
        mel_power=analysis.mel_power[rows],
        loudness_lufs=analysis.loudness_lufs[rows],
        centroid_hz=None if analysis.centroid_hz is None else analysis.centroid_hz[rows],
        clip_centroid_hz=None if analysis.clip_centroid_hz is None else analysis.clip_centroid_hz[rows],
    )


def power(spec: torch.Tensor) -> torch.Tensor:
    return spec.real.square() + spec.imag.square()


def flat(values: torch.Tensor) -> np.ndarray:
    """`[b, frames, bins]` -> contiguous float32 `[b, frames * bins]` numpy view (a copy only if strided)."""
    return values.detach().reshape(values.shape[0], -1).contiguous().numpy()


def magnitude(power_: torch.Tensor, fast: bool) -> torch.Tensor:
    """sqrt(power + eps); on the fast path correctly rounded, as the numba kernel takes it (torch's
    vectorized sqrt is off by an ulp now and then), so identical audio gives a distance of exactly 0."""
    if not fast:
        return (power_ + SQRT_EPS).sqrt()
    return torch.from_numpy(np.sqrt((power_ + SQRT_EPS).numpy()))


def log_power(power_: torch.Tensor, fast: bool) -> torch.Tensor:
    """ln(power + floor); on the fast path with the renders' kernel log (`loss_kernels.ln_into`), so
    identical audio gives a log distance of exactly 0."""
    arg = power_ + LOG_FLOOR_POWER
    if not fast:
        return torch.log(arg)
    rows = arg.reshape(arg.shape[0], -1)
    out = torch.empty_like(rows)
    loss_kernels.ln_into(rows.numpy(), out.numpy())
    return out.reshape(arg.shape)


def target_spectra(
    audio: torch.Tensor, spectra: tuple[torch.Tensor | None, ...], windows: tuple[torch.Tensor, ...]
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Fast path: per STFT resolution (window), a target's magnitudes sqrt(power + SQRT_EPS) and
    ln(power + LOG_FLOOR_POWER) `[B, frames, bins]` (`magnitude` and `log_power`'s values) and its
    energy (sum of power) `[B]`, from the given spectrum or from `loss_kernels.stft` computed row by
    row in cache (`loss_kernels.spectrum_targets` / `stft_targets`): no power tensors."""
    mags, logs, energies = [], [], []
    n_rows, n_samples = audio.shape
    for i, window in enumerate(windows):
        size = window.shape[0]
        shape = (n_rows, loss_kernels.n_frames(n_samples, size), size // 2 + 1)
        mag, log, energy = torch.empty(shape), torch.empty(shape), torch.empty(n_rows)
        flat_mag, flat_log = mag.view(n_rows, -1).numpy(), log.view(n_rows, -1).numpy()
        spec = spectra[i] if spectra else None
        if spec is None:
            samples = audio.detach().contiguous().numpy()
            loss_kernels.stft_targets(
                samples, window.numpy(), SQRT_EPS, LOG_FLOOR_POWER, flat_mag, flat_log, energy.numpy()
            )
        else:
            spec_ri = torch.view_as_real(spec.detach()).reshape(n_rows, -1).numpy()
            loss_kernels.spectrum_targets(spec_ri, SQRT_EPS, LOG_FLOOR_POWER, flat_mag, flat_log, energy.numpy())
        mags.append(mag)
        logs.append(log)
        energies.append(energy)
    return tuple(mags), tuple(logs), tuple(energies)


def mr_stft_fast(
    render: torch.Tensor,
    spectra: tuple[torch.Tensor | None, ...],
    windows: tuple[torch.Tensor, ...],
    gain2: torch.Tensor | None,
    targets: tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]],
) -> torch.Tensor:
    """`PerceptualLoss`'s MR-STFT term `[B]` on the fast path: per resolution (window), one numba pass
    (`loss_kernels.stft_distances` over the given spectrum, or `stft_scores`, which transforms and scores
    each row while in cache: `loss_kernels.stft`'s values, never materialized); combined in float64.
    targets: the target's (magnitudes, logs, energies) per resolution (`TargetFeatures`)."""
    target_mags, target_logs, target_energies = targets
    n_rows, n_sizes = render.shape[0], len(windows)
    gain = np.ones(n_rows, np.float32) if gain2 is None else gain2.detach().float().contiguous().numpy()
    sums = np.empty((n_rows, n_sizes, 2))
    n_values = np.empty(n_sizes)
    for i, window in enumerate(windows):
        mag, logpower = flat(target_mags[i]), flat(target_logs[i])
        n_values[i] = mag.shape[1]
        spec = spectra[i] if spectra else None
        if spec is None:  # computed and scored row by row, while in cache
            audio = render.detach().contiguous().numpy()
            sums[:, i] = loss_kernels.stft_scores(audio, window.numpy(), gain, mag, logpower, SQRT_EPS, LOG_FLOOR_POWER)
        else:
            spec_ri = torch.view_as_real(spec.detach()).reshape(n_rows, -1).numpy()
            sums[:, i] = loss_kernels.stft_distances((spec_ri,), gain, (mag,), (logpower,), SQRT_EPS, LOG_FLOOR_POWER)[
                :, 0
            ]
    energy = np.stack([e.detach().numpy() for e in target_energies], axis=-1).astype(np.float64)  # [b, R]
    sc = np.sqrt(sums[:, :, 0] + 1e-20) / np.sqrt(energy + n_values * LOG_FLOOR_POWER)
    mr = (sc + 0.5 * sums[:, :, 1] / n_values).mean(-1)  # 0.5: |d ln magnitude|; float64 until here
    return torch.from_numpy(mr.astype(np.float32))


def penalty_stats_fast(audio: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(|mean|, clipped fraction, mean overshoot beyond full scale) `[B]` each, in one numba pass."""
    sums = torch.from_numpy(loss_kernels.penalty_sums(audio.detach().contiguous().numpy(), threshold))
    means = (sums / audio.shape[-1]).float()
    return means[:, 0].abs(), means[:, 1], means[:, 2]
