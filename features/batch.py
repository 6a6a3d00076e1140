"""Batched, differentiable descriptors in torch: the face used by training, the matching env and evaluation.

Input: audio `Tensor[B, N]` (any rate, any device; NaN -> 0, +-Inf -> +-1) and `FeatureSettings`.
Output: `describe_batch` -> `Tensor[B, T, K]` in `DESCRIPTOR_NAMES` order (or a chosen subset),
`log_mel` -> `Tensor[B, T, n_mels]`, `mfcc`, `clip_loudness_db`, `stft_power` / `mr_stft_magnitudes`
(multi-resolution STFT), `deltas`, and `frame_times_s`.

T = max(1, N // hop); frame `i` is the window ending at sample `(i + 1) * hop` (see `features.dsp`),
so `features.stream` fed blocks of `hop` frames yields exactly these frames. The constants (window,
mel / DCT / chroma matrices, K-weighting) come from `features.dsp.plan_for`, shared with the other faces.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from features.config import FeatureSettings
from features.dsp import LOUDNESS_OFFSET_DB, MAX_ABS_SAMPLE, AnalysisPlan, plan_for
from features.names import DESCRIPTOR_NAMES, GROUPS, N_MFCC, expand
from features.pitch import yin_torch

_DB = 10.0 / math.log(10.0)  # 10 log10(x) = _DB * ln(x)
_LOUDNESS_GAIN = 10.0 ** (LOUDNESS_OFFSET_DB / 10.0)


@dataclass(frozen=True, eq=False)
class Constants:
    """The plan's matrices as tensors on one device / dtype (cached)."""

    hann: torch.Tensor  # Hann / sum(Hann)
    kweight_ms: torch.Tensor
    freqs_khz: torch.Tensor
    freq_powers: torch.Tensor  # [n_band, 5] float64: f_khz ** 0..4
    mel_t: torch.Tensor  # [n_band, n_mels]
    dct_t: torch.Tensor  # [n_mels, n_mels]
    chroma_t: torch.Tensor  # [n_band, 12]


@functools.lru_cache(maxsize=64)
def constants(plan: AnalysisPlan, device: torch.device, dtype: torch.dtype) -> Constants:
    def t(a: np.ndarray, as_dtype: torch.dtype = dtype) -> torch.Tensor:
        with torch.inference_mode(False):  # cached: must stay usable by autograd whoever creates it first
            return torch.tensor(np.ascontiguousarray(a), dtype=as_dtype, device=device)

    return Constants(
        hann=t(plan.hann * plan.spectrum_scale),  # spectra come out normalized: no pass over them
        kweight_ms=t(plan.kweight_ms),
        freqs_khz=t(plan.freqs_hz / 1000.0),
        freq_powers=t((plan.freqs_hz[:, None] / 1000.0) ** np.arange(5), torch.float64),
        mel_t=t(plan.mel.T),
        dct_t=t(plan.dct.T),
        chroma_t=t(plan.chroma.T),
    )


@dataclass(frozen=True, eq=False)
class Frames:
    """One batch cut into analysis frames, with its normalized power spectrum."""

    plan: AnalysisPlan
    const: Constants
    frames: torch.Tensor  # [B, T, window] raw samples
    power: torch.Tensor  # [B, T, n_bins] |rfft(frame * hann) / sum(hann)|^2


def sanitize(audio: torch.Tensor) -> torch.Tensor:
    """NaN -> 0, +-Inf -> +-1, then clamp to +-MAX_ABS_SAMPLE (differentiable where finite)."""
    return torch.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0).clamp(-MAX_ABS_SAMPLE, MAX_ABS_SAMPLE)


def n_frames(n_samples: int, plan: AnalysisPlan) -> int:
    return max(1, n_samples // plan.hop)


def frame_times_s(n_samples: int, sample_rate_hz: int, settings: FeatureSettings) -> np.ndarray:
    """Centre time of each frame's window, in seconds (the first may be negative if window > 2 hop)."""
    plan = plan_for(sample_rate_hz, settings)
    idx = np.arange(n_frames(n_samples, plan))
    return ((idx + 1) * plan.hop - plan.window / 2) / plan.sample_rate_hz


def _as_batch(audio: torch.Tensor) -> torch.Tensor:
    if not isinstance(audio, torch.Tensor):
        raise TypeError(f"audio must be a torch.Tensor [B, N], got {type(audio).__name__}")
    if audio.dim() == 1:
        audio = audio.unsqueeze(0)
    if audio.dim() != 2 or audio.shape[-1] == 0:
        raise ValueError(f"audio must have shape [B, N] with N > 0, got {tuple(audio.shape)}")
    if not audio.is_floating_point():
        raise TypeError(f"audio must be floating point, got {audio.dtype}")
    return audio


def analyze_frames(
    audio: torch.Tensor, sample_rate_hz: int, settings: FeatureSettings, *, history: torch.Tensor | None = None
) -> Frames:
    """Cut `[B, N]` audio into frames and compute the normalized power spectrum.

    `history` (`[B, window - hop]`, optional) is the audio just before `audio` (zeros when None), so a
    long signal can be analysed in chunks with exactly the frames of one pass.
    """
    audio = sanitize(_as_batch(audio))
    plan = plan_for(sample_rate_hz, settings)
    const = constants(plan, audio.device, audio.dtype)
    n_t = n_frames(audio.shape[-1], plan)
    total = (n_t - 1) * plan.hop + plan.window
    left = plan.window - plan.hop
    if history is not None:
        if history.shape[-1] != left:
            raise ValueError(f"history must have window - hop = {left} frames, got {history.shape[-1]}")
        audio = torch.cat([sanitize(_as_batch(history)).to(audio), audio], dim=-1)
        left = 0
    padded = F.pad(audio, (left, max(0, total - left - audio.shape[-1])))[..., :total]
    frames = padded.unfold(-1, plan.window, plan.hop)  # [B, T, window]
    spec = torch.fft.rfft(frames * const.hann, dim=-1)  # const.hann is divided by its sum
    power = spec.real.square() + spec.imag.square()
    return Frames(plan=plan, const=const, frames=frames, power=power)


def _db(x: torch.Tensor, floor: float) -> torch.Tensor:
    return _DB * torch.log(x + floor)


def loudness_group(fr: Frames) -> torch.Tensor:
    """`[B, T, 3]`: loudness_db (K-weighted, BS.1770 momentary style), rms_db, peak_db."""
    p = fr.plan
    kms = fr.power @ fr.const.kweight_ms
    loud = _db(kms * _LOUDNESS_GAIN, p.floor_power)
    rms = _db(fr.frames.square().mean(-1), p.floor_power)
    peak = 2.0 * _db(fr.frames.abs().amax(-1), p.floor_amp)
    return torch.stack([loud, rms, peak], dim=-1)


def band_magnitude(fr: Frames) -> torch.Tensor:
    """Magnitudes of the bins up to max_freq_hz, softly floored: `sqrt(power + band_floor^2)`, `[B, T, n_band]`."""
    return torch.sqrt(fr.power[..., : fr.plan.n_band] + fr.plan.band_floor_amp**2)


def spectral_shape(fr: Frames, mag: torch.Tensor | None = None) -> torch.Tensor:
    """`[B, T, 7]`: centroid, spread (Hz), skewness, kurtosis, rolloff (Hz), flatness, crest (dB), as FluCoMa.

    The moments come from one float64 matmul with the powers of frequency (raw moments, then central
    ones: float64 keeps the cancellation harmless even for a pure tone's kurtosis).
    """
    mag = band_magnitude(fr) if mag is None else mag
    f = fr.const.freqs_khz
    raw = mag.double() @ fr.const.freq_powers  # [..., 5]: sum of mag * f^k, k = 0..4
    total = raw[..., 0]
    m1, m2, m3, m4 = (raw[..., k] / total for k in range(1, 5))
    var = m2 - m1.square()
    var = var.clamp_min(1e-12 * (1.0 + m2))
    spread = torch.sqrt(var)
    skew = (m3 - 3.0 * m1 * m2 + 2.0 * m1.pow(3)) / (var * spread)
    kurt = (m4 - 4.0 * m1 * m3 + 6.0 * m1.square() * m2 - 3.0 * m1.pow(4)) / var.square()
    total32 = total.to(mag.dtype)
    cum = mag.cumsum(-1)
    target = (fr.plan.rolloff_0to1 * total32).unsqueeze(-1)
    idx = torch.searchsorted(cum.detach().contiguous(), target.detach().contiguous()).clamp(max=mag.shape[-1] - 1)
    cum_i = cum.gather(-1, idx).squeeze(-1)
    mag_i = mag.gather(-1, idx).squeeze(-1)
    bin_khz = float(f[1] - f[0]) if f.numel() > 1 else 0.0
    f_i = f[idx.squeeze(-1)]
    rolloff = torch.where(idx.squeeze(-1) == 0, f_i, f_i - bin_khz * (cum_i - target.squeeze(-1)) / mag_i)
    log_mean = torch.log(total32 / mag.shape[-1])
    flatness = 2.0 * _DB * (torch.log(mag).mean(-1) - log_mean)
    crest = 2.0 * _DB * (torch.log(mag.amax(-1)) - log_mean)
    moments = torch.stack([1000.0 * m1, 1000.0 * spread, skew, kurt], dim=-1).to(mag.dtype)
    return torch.cat([moments, torch.stack([rolloff * 1000.0, flatness, crest], dim=-1)], dim=-1)


def log_mel_frames(fr: Frames) -> torch.Tensor:
    """`[B, T, n_mels]` mel band power in dB (floored at silence_db)."""
    return _db(fr.power[..., : fr.plan.n_band] @ fr.const.mel_t, fr.plan.floor_power)


def mfcc_from_log_mel(logmel: torch.Tensor, const: Constants, n_mfcc: int = N_MFCC) -> torch.Tensor:
    """Orthonormal DCT-II of the dB mel bands: `[..., n_mfcc]`."""
    return logmel @ const.dct_t[:, :n_mfcc]


def chroma_frames(fr: Frames) -> torch.Tensor:
    """`[B, T, 12]` pitch-class energy A..G#, each frame divided by its maximum (silence -> 0)."""
    raw = fr.power[..., : fr.plan.n_band] @ fr.const.chroma_t
    return raw / (raw.amax(-1, keepdim=True) + fr.plan.floor_power)


def pitch_frames(fr: Frames) -> torch.Tensor:
    """`[B, T, 2]`: pitch_hz (YIN; 0 on silence) and pitch_confidence in [0, 1]."""
    return yin_torch(fr.frames, fr.plan)


def describe_frames(fr: Frames, names: Iterable[str] | None = None) -> torch.Tensor:
    """Descriptors of analysed frames: `[B, T, K]`, K = len(names) (default all, SPEC order)."""
    wanted = DESCRIPTOR_NAMES if names is None else expand(names)
    parts: dict[str, torch.Tensor] = {}
    needed = {group for group, members in GROUPS.items() if any(n in wanted for n in members)}
    if "loudness" in needed:
        parts["loudness"] = loudness_group(fr)
    if "specshape" in needed:
        parts["specshape"] = spectral_shape(fr)
    if "mfcc" in needed:
        parts["mfcc"] = mfcc_from_log_mel(log_mel_frames(fr), fr.const)
    if "chroma" in needed:
        parts["chroma"] = chroma_frames(fr)
    if "pitch" in needed:
        parts["pitch"] = pitch_frames(fr)
    if names is None:
        return torch.cat([parts[g] for g in GROUPS], dim=-1)
    columns = []
    for name in wanted:
        group = next(g for g, members in GROUPS.items() if name in members)
        columns.append(parts[group][..., GROUPS[group].index(name)])
    return torch.stack(columns, dim=-1)


CHUNK_FRAMES = 256  # frames per pass: intermediate tensors of ~1 MB stay in cache (1.5-2x faster on CPU)


def row_chunks(n_rows: int, frames_per_row: int, max_frames: int | None = None) -> list[slice]:
    """Split a batch into row slices of at most `max_frames` (default `CHUNK_FRAMES`) frames, >= 1 row each."""
    limit = CHUNK_FRAMES if max_frames is None else max_frames
    rows = max(1, limit // max(1, frames_per_row))
    return [slice(i, min(i + rows, n_rows)) for i in range(0, n_rows, rows)]


def describe_batch(
    audio: torch.Tensor, sample_rate_hz: int, settings: FeatureSettings, names: Iterable[str] | None = None
) -> torch.Tensor:
    """`[B, N]` audio -> `[B, T, K]` descriptors (all of `DESCRIPTOR_NAMES`, or the named subset/groups).

    Large batches run in row chunks of about `CHUNK_FRAMES` frames (same values, cache-friendly).
    """
    audio = _as_batch(audio)
    names = None if names is None else tuple(names)
    t = n_frames(audio.shape[-1], plan_for(sample_rate_hz, settings))
    parts = [
        describe_frames(analyze_frames(audio[rows], sample_rate_hz, settings), names)
        for rows in row_chunks(audio.shape[0], t)
    ]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)


def log_mel(audio: torch.Tensor, sample_rate_hz: int, settings: FeatureSettings) -> torch.Tensor:
    """`[B, N]` audio -> `[B, T, n_mels]` log-mel in dB."""
    return log_mel_frames(analyze_frames(audio, sample_rate_hz, settings))


def mfcc(audio: torch.Tensor, sample_rate_hz: int, settings: FeatureSettings) -> torch.Tensor:
    """`[B, N]` audio -> `[B, T, settings.n_mfcc]` MFCC."""
    fr = analyze_frames(audio, sample_rate_hz, settings)
    return mfcc_from_log_mel(log_mel_frames(fr), fr.const, settings.n_mfcc)


def stft_power(audio: torch.Tensor, fft_size: int, window: torch.Tensor | None = None) -> torch.Tensor:
    """`[B, N]` audio -> `[B, fft_size // 2 + 1, frames]` STFT power, hop fft_size / 4, centred frames.

    `window` defaults to a periodic Hann divided by its sum (a full-scale sine then peaks at 0.25),
    the normalization every resolution of the multi-resolution STFT shares.
    """
    audio = sanitize(_as_batch(audio))
    if window is None:
        window = torch.hann_window(fft_size, periodic=True, dtype=audio.dtype, device=audio.device)
        window = window / window.sum()
    spec = torch.stft(
        audio,
        n_fft=fft_size,
        hop_length=fft_size // 4,
        window=window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    return spec.real.square() + spec.imag.square()  # 4x faster than summing view_as_real's last axis


def mr_stft_magnitudes(audio: torch.Tensor, fft_sizes: Iterable[int] = (2048, 1024, 512)) -> tuple[torch.Tensor, ...]:
    """Multi-resolution STFT magnitudes `[B, bins, frames]`, one per size (the loss's L_MRSTFT input)."""
    return tuple(torch.sqrt(stft_power(audio, size) + 1e-12) for size in fft_sizes)


def deltas(x: torch.Tensor) -> torch.Tensor:
    """Frame-to-frame differences along the time axis (-2) of `[..., T, K]`; the first frame's delta is 0."""
    return torch.cat([torch.zeros_like(x[..., :1, :]), x[..., 1:, :] - x[..., :-1, :]], dim=-2)


def clip_loudness_frames(fr: Frames) -> torch.Tensor:
    """`[B]` loudness of the whole clip in LUFS: K-weighted mean square over all frames (ungated)."""
    kms = (fr.power @ fr.const.kweight_ms).mean(-1)
    return _db(kms * _LOUDNESS_GAIN, fr.plan.floor_power)


def clip_loudness_db(audio: torch.Tensor, sample_rate_hz: int, settings: FeatureSettings) -> torch.Tensor:
    """`[B, N]` audio -> `[B]` clip loudness in LUFS (BS.1770 K-weighting, no gating)."""
    return clip_loudness_frames(analyze_frames(audio, sample_rate_hz, settings))
