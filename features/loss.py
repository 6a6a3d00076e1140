"""Perceptual loss between rendered and target audio, with anti-cheat penalties and cached targets.

Input: renders `Tensor[B, N]` and a target (`Tensor[N]`, `[1, N]` or `[B, N]`) at `sample_rate_hz`.
Output: `LossTerms`, each a `Tensor[B]` (differentiable in the render):

    total = w_mr * mr_stft + w_mfcc * mfcc + w_cent * centroid + w_loud * loudness + w_dc * dc + w_clip * clip

- `mr_stft`: mean over `fft_sizes` (hop = size / 4, Hann) of spectral convergence + mean |d log magnitude|;
- `mfcc`: mean |d MFCC| (dB-scaled cepstra, `features.batch`) over frames and coefficients;
- `centroid`: |log2 ratio| of the clip centroids (octaves), from the frame-averaged magnitude spectrum;
- `loudness`: |d LUFS| of the clips (BS.1770 K-weighting, ungated);
- `dc`, `clip`: anti-cheat, the render's excess over the target of |mean| and of the clipped fraction
  (|x| >= clip_threshold) plus mean overshoot beyond full scale.
With `normalize_loudness`, the render is gain-matched to the target's LUFS before the spectral terms.

`prepare_target` computes a target's features once (per episode); `compare` scores a batch of renders
against them, optionally reusing the renders' `analyze` (`features.loss_analysis.RenderAnalysis`: the
analysis frames, mel power, loudness, centroids; e.g. those an observation was computed from). Each
STFT resolution is scored right after its transform, while it is in cache.
The analysis frames (`features.batch.analyze_frames`' window and hop) are taken from the loss's own
STFT when they are frames of it (16 kHz defaults: every other frame of the 1024-point STFT): no
second transform, `analyze_frames`' values to FFT rounding. `BestSoFar` turns per-step losses into
episodic improvement bonuses.

Two paths, same values to float32 rounding: when no gradient is wanted (grad mode off, or nothing
requires grad) on float32 CPU tensors, the STFTs (DUCC0's FFTs inside numba), the STFT terms, the
analysis frames' band sums, the centroids and the penalties run through the one-pass numba kernels of
`features.loss_kernels` (targets through the same kernels, so identical audio scores exactly 0);
otherwise everything is torch (`torch.stft`) and differentiable (`forward` gives the target the
render's transform; a target prepared without gradient and compared with renders that want one
differs by FFT rounding, ~1e-6 on identical audio). They agree within rtol 2e-5 (sums are
accumulated in float64 and the log is the kernel's own float32 log, within 1 ulp); see
tests/features/test_loss.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import nn

from features import batch, loss_kernels
from features import loss_analysis as la
from features.config import FeatureSettings, LossSettings
from features.dsp import plan_for
from features.loss_analysis import LOG_FLOOR_POWER, SQRT_EPS, RenderAnalysis

__all__ = ["BestSoFar", "LossTerms", "PerceptualLoss", "RenderAnalysis", "TargetFeatures"]


@dataclass(frozen=True)
class LossTerms:
    """Each field `Tensor[B]`; `total` is the weighted sum."""

    total: torch.Tensor
    mr_stft: torch.Tensor
    mfcc: torch.Tensor
    centroid: torch.Tensor
    loudness: torch.Tensor
    dc: torch.Tensor
    clip: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class TargetFeatures:
    """A target's features, computed once by `PerceptualLoss.prepare_target` (leading dim 1 or B)."""

    n_samples: int
    stft_mag: tuple[torch.Tensor, ...]  # per resolution [b, frames, bins]
    stft_logpower: tuple[torch.Tensor, ...]  # ln(power + floor)
    stft_energy: tuple[torch.Tensor, ...]  # per resolution [b]: sum of squared magnitudes
    mfcc: torch.Tensor  # [b, T, n_mfcc]
    centroid_hz: torch.Tensor  # [b]
    loudness_lufs: torch.Tensor  # [b]
    dc: torch.Tensor  # [b] |mean|
    clip_fraction: torch.Tensor  # [b]
    overshoot: torch.Tensor  # [b]


class PerceptualLoss(nn.Module):
    """The weighted perceptual loss; STFT windows and analysis matrices live in buffers (move with `.to`)."""

    def __init__(
        self,
        settings: LossSettings | None = None,
        feature_settings: FeatureSettings | None = None,
        sample_rate_hz: int = 16000,
    ) -> None:
        super().__init__()
        self.settings = settings or LossSettings()
        self.feature_settings = feature_settings or FeatureSettings()
        self.sample_rate_hz = int(sample_rate_hz)
        if not self.settings.fft_sizes or min(self.settings.fft_sizes) < 16:
            raise ValueError(f"loss.fft_sizes must be sizes >= 16, got {self.settings.fft_sizes}")
        self.plan = plan_for(self.sample_rate_hz, self.feature_settings)
        for size in self.settings.fft_sizes:  # periodic Hann / its sum, rounded once from float64 (as the plan's)
            hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(size) / size)
            window = torch.tensor(hann * (1.0 / hann.sum()), dtype=torch.float32)
            self.register_buffer(f"window_{size}", window, persistent=False)
        const = batch.constants(self.plan, torch.device("cpu"), torch.float32)
        for f in fields(batch.Constants):
            self.register_buffer(f"an_{f.name}", getattr(const, f.name).clone(), persistent=False)

    # -- analysis -------------------------------------------------------------------------------------------
    def _constants(self) -> batch.Constants:
        return batch.Constants(**{f.name: getattr(self, f"an_{f.name}") for f in fields(batch.Constants)})

    def _stft(self, audio: torch.Tensor, size: int, numba_stft: bool = True) -> torch.Tensor:
        """Complex STFT `[B, frames, bins]` (contiguous) of sanitized audio; hop size / 4, centred frames.
        On the fast path (`la.numba_ok`) `features.loss_kernels.stft` unless `numba_stft` is False: torch's
        values to FFT rounding."""
        window = getattr(self, f"window_{size}")
        if numba_stft and la.numba_ok(audio, window):
            audio = audio.detach().contiguous()
            n_frames = loss_kernels.n_frames(audio.shape[-1], size)
            spec = torch.empty(audio.shape[0], n_frames, size // 2 + 1, dtype=torch.complex64)
            loss_kernels.stft(audio.numpy(), window.numpy(), spec.numpy())
            return spec
        spec = torch.stft(
            audio,
            n_fft=size,
            hop_length=size // 4,
            window=window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        return spec.transpose(-1, -2).contiguous()  # torch lays it out frames-major already: no copy

    def torch_stft(self, audio: torch.Tensor, size: int) -> torch.Tensor:
        """`torch.stft` at one of `fft_sizes` as the loss takes it (differentiable, forward mode too)."""
        return self._stft(audio, size, numba_stft=False)

    def _frames(self, audio: torch.Tensor) -> batch.Frames:
        fr = batch.analyze_frames(audio, self.sample_rate_hz, self.feature_settings)
        return batch.Frames(plan=fr.plan, const=self._constants(), frames=fr.frames, power=fr.power)

    def analyze(self, render: torch.Tensor) -> RenderAnalysis:
        """The renders' analysis (`features.loss_analysis.RenderAnalysis`), to share with other features
        of the renders and pass to `compare` (which computes exactly this when not given it).

        When the analysis window is one of the loss's STFT sizes and its frames fall on that STFT's
        (16 kHz defaults: window 1024, hop 512 = every other frame of the 1024-point STFT), the
        analysis frames' spectra are taken from the STFT instead of a second transform (the same
        windowed samples: `features.batch.analyze_frames`'s values to FFT rounding); that STFT is kept
        for `compare`, which computes the other resolutions one at a time, each scored while in cache.
        """
        return self._analyze(la.sanitize(self._as_batch(render, "render")))

    def _analyze(self, audio: torch.Tensor, numba_stft: bool = True) -> RenderAnalysis:
        sizes = self.settings.fft_sizes
        shared = la.shared_stft(self.plan, sizes, audio.shape[-1])
        if shared is None:
            return la.analysis_of(self._frames(audio))
        index, *geometry = shared
        window = getattr(self, f"window_{sizes[index]}")
        if numba_stft and la.numba_ok(audio, window):  # the STFT and its frames' analysis in one pass
            analysis = la.stft_analysis(audio, window, self.plan, self._constants(), tuple(geometry))  # type: ignore[arg-type]
            specs = tuple(analysis.spectra[0] if i == index else None for i in range(len(sizes)))
            return dataclasses.replace(analysis, spectra=specs)
        spec = self._stft(audio, sizes[index], numba_stft)
        specs = tuple(spec if i == index else None for i in range(len(sizes)))
        fr, mel_power, kms = la.frames_from_stft(audio, spec, self.plan, self._constants(), tuple(geometry))  # type: ignore[arg-type]
        return la.analysis_of(fr, specs, mel_power, kms)

    def _clip_centroid_hz(self, fr: batch.Frames, gain2: torch.Tensor | None = None) -> torch.Tensor:
        if la.numba_ok(fr.power):
            return la.centroids(fr, gain2)[1]
        power = fr.power[..., : self.plan.n_band].mean(-2)
        if gain2 is not None:
            power = power * gain2.unsqueeze(-1)
        mag = torch.sqrt(power + self.plan.band_floor_amp**2)
        return 1000.0 * (mag @ fr.const.freqs_khz) / mag.sum(-1)

    def _mfcc(
        self, fr: batch.Frames, gain2: torch.Tensor | None = None, mel_power: torch.Tensor | None = None
    ) -> torch.Tensor:
        """MFCC of the frames (`mel_power`: their band power @ mel, if already computed: then gained after the
        (linear) mel projection, which on the fast path keeps identical audio at exactly 0)."""
        if mel_power is not None:
            gained = mel_power if gain2 is None else mel_power * gain2[:, None, None]
            logmel = 10.0 * torch.log10(gained + self.plan.floor_power)
            return batch.mfcc_from_log_mel(logmel, fr.const, self.feature_settings.n_mfcc)
        power = fr.power[..., : self.plan.n_band]
        if gain2 is not None:
            power = power * gain2[:, None, None]
        logmel = 10.0 * torch.log10(power @ fr.const.mel_t + self.plan.floor_power)
        return batch.mfcc_from_log_mel(logmel, fr.const, self.feature_settings.n_mfcc)

    @staticmethod
    def _penalty_stats(audio: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mag = audio.abs()
        return audio.mean(-1).abs(), (mag >= threshold).to(audio.dtype).mean(-1), torch.relu(mag - 1.0).mean(-1)

    # -- targets ----------------------------------------------------------------------------------------------
    def prepare_target(self, target: torch.Tensor, *, analysis: RenderAnalysis | None = None) -> TargetFeatures:
        """Features of the target audio (`[N]` or `[b, N]`), computed once without gradient. `analysis`:
        the target's `analyze(target)` if already computed (e.g. for its observation): the same values."""
        target = la.sanitize(self._as_batch(target, "target"))
        if analysis is not None and analysis.frames.power.shape[0] != target.shape[0]:
            raise ValueError(f"analysis has {analysis.frames.power.shape[0]} rows, the target {target.shape[0]}")
        with torch.no_grad():
            return self._target_features(target, analysis)

    def _target_features(
        self, target: torch.Tensor, analysis: RenderAnalysis | None = None, numba_stft: bool = True
    ) -> TargetFeatures:
        """The renders' own analysis of the target (`_analyze`), so identical audio gives identical stats
        (`numba_stft`: the STFTs the renders will get, see `forward`)."""
        analysis = self._analyze(target, numba_stft) if analysis is None else analysis
        fr = analysis.frames
        fast = self._fast_path(target, None)
        if fast and numba_stft:  # per row: STFT (or the analysis'), magnitudes, logs, energy in one pass
            windows = tuple(getattr(self, f"window_{size}") for size in self.settings.fft_sizes)
            mags, logs, energies = la.target_spectra(target, analysis.spectra, windows)
        else:
            sizes = range(len(self.settings.fft_sizes))
            powers = tuple(la.power(self._spectrum(target, analysis, i, numba_stft)) for i in sizes)
            mags = tuple(la.magnitude(p, fast) for p in powers)
            logs = tuple(la.log_power(p, fast) for p in powers)
            energies = tuple(p.sum((-1, -2)) for p in powers)
        if fast:
            dc, clip_fraction, overshoot = la.penalty_stats_fast(target, self.settings.clip_threshold)
        else:
            dc, clip_fraction, overshoot = self._penalty_stats(target, self.settings.clip_threshold)
        centroid = analysis.clip_centroid_hz
        return TargetFeatures(
            n_samples=target.shape[-1],
            stft_mag=mags,
            stft_logpower=logs,
            stft_energy=energies,
            mfcc=self._mfcc(fr, None, analysis.mel_power),
            centroid_hz=self._clip_centroid_hz(fr) if centroid is None else centroid,
            loudness_lufs=analysis.loudness_lufs,
            dc=dc,
            clip_fraction=clip_fraction,
            overshoot=overshoot,
        )

    # -- comparison -----------------------------------------------------------------------------------------
    def compare(
        self,
        render: torch.Tensor,
        target: TargetFeatures,
        *,
        frames: batch.Frames | None = None,
        analysis: RenderAnalysis | None = None,
    ) -> LossTerms:
        """Score renders `[B, N]` against prepared target features (broadcast over B when the target has 1).

        The torch path runs in row chunks of about `features.batch.CHUNK_FRAMES` analysis frames
        (cache-friendly: ~1.7x faster at B = 64 than one pass; same values, gradients included); the fast
        path in one pass (its kernels work row by row; chunks would only add per-call costs). `frames`: the renders'
        `features.batch.analyze_frames` at this loss's rate and feature settings, if already computed
        (the same values as computing them here, which is then skipped). `analysis`: the renders'
        `analyze(render)` (then `frames` is ignored), the same values as `compare` computes without it.
        """
        render = la.sanitize(self._as_batch(render, "render"))
        if render.shape[-1] != target.n_samples:
            raise ValueError(f"render has {render.shape[-1]} samples, the prepared target {target.n_samples}")
        b_target = target.mfcc.shape[0]
        if b_target not in (1, render.shape[0]):
            raise ValueError(f"target features have batch {b_target}, renders {render.shape[0]} (need 1 or equal)")
        given = analysis.frames if analysis is not None else frames
        if given is not None and tuple(given.power.shape[:2]) != (render.shape[0], target.mfcc.shape[1]):
            raise ValueError(f"frames {tuple(given.power.shape[:2])} do not belong to these renders and target")
        if analysis is None and frames is not None:
            analysis = la.analysis_of(batch.Frames(frames.plan, self._constants(), frames.frames, frames.power))
        fast = self._fast_path(render, target)
        chunks = [slice(0, render.shape[0])] if fast else batch.row_chunks(render.shape[0], target.mfcc.shape[1])
        if len(chunks) == 1:
            return self._compare(render, target, analysis, fast)
        parts = [
            self._compare(
                render[rows],
                target if b_target == 1 else _rows(target, rows),
                None if analysis is None else la.analysis_rows(analysis, rows),
                fast,
            )
            for rows in chunks
        ]
        return LossTerms(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(LossTerms)})

    @staticmethod
    def _fast_path(render: torch.Tensor, target: TargetFeatures | None) -> bool:
        """The numba path: float32 CPU tensors and no gradient wanted of the render or the target."""
        tensors = [render]
        if target is not None:
            tensors += [*target.stft_mag, *target.stft_logpower, *target.stft_energy, target.mfcc]
        if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
            return False
        return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))

    def _compare(
        self, render: torch.Tensor, target: TargetFeatures, analysis: RenderAnalysis | None, fast: bool
    ) -> LossTerms:
        s = self.settings
        if analysis is None:
            analysis = self._analyze(render, numba_stft=fast)
        fr, loud = analysis.frames, analysis.loudness_lufs
        loudness = (loud - target.loudness_lufs).abs()
        gain2 = None
        if s.normalize_loudness:
            gain2 = torch.pow(10.0, ((target.loudness_lufs - loud) / 10.0).clamp(-60.0, 60.0))
        if fast:
            mr = self._mr_stft_fast(render, analysis, gain2, target)
        else:
            mr = torch.zeros_like(loud)
            for i in range(len(s.fft_sizes)):
                sc, log_l1 = self._stft_terms(self._spectrum(render, analysis, i, False), gain2, target, i)
                mr = mr + sc + 0.5 * log_l1  # 0.5: |d ln magnitude|
            mr = mr / len(s.fft_sizes)
        mfcc = (self._mfcc(fr, gain2, analysis.mel_power) - target.mfcc).abs().mean((-1, -2))
        clip_hz = analysis.clip_centroid_hz if gain2 is None else None
        clip_hz = self._clip_centroid_hz(fr, gain2) if clip_hz is None else clip_hz
        centroid = torch.log2(clip_hz / target.centroid_hz).abs()
        if fast:
            dc_r, clip_r, over_r = la.penalty_stats_fast(render, s.clip_threshold)
        else:
            dc_r, clip_r, over_r = self._penalty_stats(render, s.clip_threshold)
        dc = torch.relu(dc_r - target.dc)
        clip = torch.relu(clip_r - target.clip_fraction) + torch.relu(over_r - target.overshoot)
        total = (
            s.w_mr * mr + s.w_mfcc * mfcc + s.w_cent * centroid + s.w_loud * loudness + s.w_dc * dc + s.w_clip * clip
        )
        return LossTerms(total=total, mr_stft=mr, mfcc=mfcc, centroid=centroid, loudness=loudness, dc=dc, clip=clip)

    def _stft_terms(
        self, spec: torch.Tensor, gain2: torch.Tensor | None, target: TargetFeatures, i: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Spectral convergence and mean |d ln power| at one resolution (torch, differentiable)."""
        power = la.power(spec)
        if gain2 is not None:
            power = power * gain2[:, None, None]
        floor = power.shape[-1] * power.shape[-2] * LOG_FLOOR_POWER
        distance = torch.sqrt(((power + SQRT_EPS).sqrt() - target.stft_mag[i]).square().sum((-1, -2)) + 1e-20)
        sc = distance / torch.sqrt(target.stft_energy[i] + floor)
        log_l1 = (torch.log(power + LOG_FLOOR_POWER) - target.stft_logpower[i]).abs().mean((-1, -2))
        return sc, log_l1

    def _spectrum(self, audio: torch.Tensor, analysis: RenderAnalysis, i: int, numba_stft: bool = True) -> torch.Tensor:
        """The STFT at fft size number i: the analysis' if it computed it, else computed now."""
        spec = analysis.spectra[i] if analysis.spectra else None
        return self._stft(audio, self.settings.fft_sizes[i], numba_stft) if spec is None else spec

    def _mr_stft_fast(
        self, render: torch.Tensor, analysis: RenderAnalysis, gain2: torch.Tensor | None, target: TargetFeatures
    ) -> torch.Tensor:
        """The MR-STFT term as `_stft_terms` sums it, without gradient (`la.mr_stft_fast`)."""
        windows = tuple(getattr(self, f"window_{size}") for size in self.settings.fft_sizes)
        targets = (target.stft_mag, target.stft_logpower, target.stft_energy)
        return la.mr_stft_fast(render, analysis.spectra, windows, gain2, targets)

    def forward(self, render: torch.Tensor, target: torch.Tensor) -> LossTerms:
        """Loss of renders `[B, N]` against target audio (gradient flows into the target too if it requires it)."""
        target = batch.sanitize(self._as_batch(target, "target"))
        # the target's STFTs from the same transform as the render's (numba or torch: FFT rounding
        # differs), so identical audio scores ~0 on both paths
        render = self._as_batch(render, "render")
        return self.compare(render, self._target_features(target, numba_stft=self._fast_path(render, None)))

    @staticmethod
    def _as_batch(audio: torch.Tensor, what: str) -> torch.Tensor:
        if not isinstance(audio, torch.Tensor) or not audio.is_floating_point():
            raise TypeError(f"{what} must be a floating-point torch.Tensor, got {getattr(audio, 'dtype', type(audio))}")
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        if audio.dim() != 2 or audio.shape[-1] == 0:
            raise ValueError(f"{what} must have shape [B, N] or [N] with N > 0, got {tuple(audio.shape)}")
        return audio


def _rows(target: TargetFeatures, rows: slice) -> TargetFeatures:
    """The target features of some batch rows."""
    values = {}
    for f in fields(TargetFeatures):
        value = getattr(target, f.name)
        if isinstance(value, tuple):
            values[f.name] = tuple(v[rows] for v in value)
        elif isinstance(value, torch.Tensor):
            values[f.name] = value[rows]
        else:
            values[f.name] = value
    return TargetFeatures(**values)


class BestSoFar:
    """Per-environment lowest loss in the current episode; `update` returns the improvement bonus.

    `update(losses)` -> `max(0, best - loss)` per env (0 on an episode's first step, or when worse),
    then lowers `best`. `reset(envs, initial)` starts new episodes (all envs, an index array or a
    boolean mask), optionally from a known starting loss.
    """

    def __init__(self, n_envs: int) -> None:
        if n_envs <= 0:
            raise ValueError(f"n_envs must be > 0, got {n_envs}")
        self.best = np.full(n_envs, np.inf)

    def reset(self, envs: np.ndarray | slice | None = None, initial: np.ndarray | float | None = None) -> None:
        where = slice(None) if envs is None else envs
        self.best[where] = np.inf if initial is None else initial

    def update(self, losses: np.ndarray | torch.Tensor) -> np.ndarray:
        loss = losses.detach().cpu().numpy() if isinstance(losses, torch.Tensor) else np.asarray(losses, dtype=float)
        if loss.shape != self.best.shape:
            raise ValueError(f"losses must have shape {self.best.shape}, got {loss.shape}")
        loss = np.where(np.isfinite(loss), loss, np.inf)
        improvement = np.where(np.isfinite(self.best), np.maximum(self.best - loss, 0.0), 0.0)
        np.minimum(self.best, loss, out=self.best)
        return improvement
