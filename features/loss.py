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
against them (optionally reusing the renders' `features.batch.Frames`, e.g. those an observation was
computed from). `BestSoFar` turns per-step losses into episodic improvement bonuses.

Two paths, same values: when no gradient is wanted (grad mode off, or nothing requires grad) on
float32 CPU tensors, the STFT terms and the penalties run through the one-pass numba kernels of
`features.loss_kernels` (~2x faster); otherwise everything is torch and differentiable. They agree to
float32 rounding (only the per-row sums are accumulated differently); see tests/features/test_loss.py.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from features import batch, loss_kernels
from features.config import FeatureSettings, LossSettings
from features.dsp import MAX_ABS_SAMPLE, plan_for

_LOG_FLOOR_POWER = 1e-9  # -90 dB: log-magnitudes of silent bins meet here
_SQRT_EPS = 1e-12  # keeps d sqrt(power) / d power finite on silent bins


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


@dataclass(frozen=True, eq=False)
class RenderAnalysis:
    """What `compare` computes of renders before scoring them (`PerceptualLoss.analyze`): share it with
    other features of the same renders (e.g. an observation), then pass it to `compare`."""

    frames: batch.Frames  # the renders' analysis frames (`features.batch.analyze_frames`'s, see `analyze`)
    spectra: tuple[torch.Tensor, ...]  # complex [B, frames, bins] per fft size (empty: computed in `compare`)
    mel_power: torch.Tensor  # [B, T, n_mels]: band power of the frames @ mel filters
    loudness_lufs: torch.Tensor  # [B] clip loudness (`features.batch.clip_loudness_frames`)


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

    def _stft(self, audio: torch.Tensor, size: int) -> torch.Tensor:
        """Complex STFT `[B, frames, bins]` (contiguous) of sanitized audio; hop size / 4, centred frames."""
        spec = torch.stft(
            audio,
            n_fft=size,
            hop_length=size // 4,
            window=getattr(self, f"window_{size}"),
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        return spec.transpose(-1, -2).contiguous()  # torch lays it out frames-major already: no copy

    def _stft_power(self, audio: torch.Tensor, size: int) -> torch.Tensor:
        """`[B, frames, bins]` power (`features.batch.stft_power`'s, transposed, window rounded from float64)."""
        return _power(self._stft(audio, size))

    def _frames(self, audio: torch.Tensor) -> batch.Frames:
        fr = batch.analyze_frames(audio, self.sample_rate_hz, self.feature_settings)
        return batch.Frames(plan=fr.plan, const=self._constants(), frames=fr.frames, power=fr.power)

    def analyze(self, render: torch.Tensor, *, spectra: bool = True) -> RenderAnalysis:
        """The renders' analysis (`RenderAnalysis`), to share with other features and pass to `compare`.

        When the analysis window is one of the loss's STFT sizes and its frames fall on that STFT's
        (16 kHz defaults: window 1024, hop 512 = every other frame of the 1024-point STFT), the
        analysis frames' spectra are taken from the STFT instead of a second transform: the same
        windowed samples, so the same values to FFT rounding. `spectra=False`: only that STFT is kept
        for the frames (features without the loss; the frames are then the same as with `spectra`).
        """
        render = self._sanitize(self._as_batch(render, "render"))
        shared = self._shared_stft(render.shape[-1])
        specs: tuple[torch.Tensor, ...] = ()
        if spectra:
            specs = tuple(self._stft(render, n) for n in self.settings.fft_sizes)
        if shared is None:
            fr = self._frames(render)
        else:
            index, first, step, count = shared
            spec = specs[index] if specs else self._stft(render, self.settings.fft_sizes[index])
            fr = self._frames_from_stft(render, spec[:, first : first + step * (count - 1) + 1 : step])
        return self._analysis_of(fr, specs)

    def _shared_stft(self, n_samples: int) -> tuple[int, int, int, int] | None:
        """(fft size index, first STFT frame, frame step, analysis frames) when the analysis frames are
        frames of one of the loss's STFTs (same window: both are periodic Hann / sum from float64), else None."""
        plan, sizes = self.plan, self.settings.fft_sizes
        if plan.window not in sizes:
            return None
        hop = plan.window // 4  # the STFT's
        offset = plan.hop - plan.window // 2  # analysis frame m is centred at (m + 1) * plan.hop - window / 2
        if offset % hop or plan.hop % hop or offset < 0:
            return None
        count = batch.n_frames(n_samples, plan)
        first, step = offset // hop, plan.hop // hop
        if first + step * (count - 1) > n_samples // hop:  # past the STFT's last frame
            return None
        return sizes.index(plan.window), first, step, count

    def _frames_from_stft(self, audio: torch.Tensor, spec: torch.Tensor) -> batch.Frames:
        """`batch.Frames` whose power comes from STFT frames `[B, T, bins]` (the raw frames as a view)."""
        plan = self.plan
        left = plan.window - plan.hop
        total = (spec.shape[1] - 1) * plan.hop + plan.window
        padded = F.pad(audio, (left, max(0, total - left - audio.shape[-1])))[..., :total]
        frames = padded.unfold(-1, plan.window, plan.hop)
        return batch.Frames(plan=plan, const=self._constants(), frames=frames, power=_power(spec))

    def _sanitize(self, audio: torch.Tensor) -> torch.Tensor:
        """`batch.sanitize`, skipped (the same tensor back) for clean float32 CPU audio wanting no gradient."""
        clean_candidate = audio.device.type == "cpu" and audio.dtype == torch.float32
        if clean_candidate and not (torch.is_grad_enabled() and audio.requires_grad):
            values = audio.detach()
            if values.is_contiguous() and loss_kernels.is_clean(values.numpy(), MAX_ABS_SAMPLE):
                return audio
        return batch.sanitize(audio)

    def _clip_centroid_hz(self, fr: batch.Frames, gain2: torch.Tensor | None = None) -> torch.Tensor:
        power = fr.power[..., : self.plan.n_band].mean(-2)
        if gain2 is not None:
            power = power * gain2.unsqueeze(-1)
        mag = torch.sqrt(power + self.plan.band_floor_amp**2)
        return 1000.0 * (mag @ fr.const.freqs_khz) / mag.sum(-1)

    def _mfcc(
        self, fr: batch.Frames, gain2: torch.Tensor | None = None, mel_power: torch.Tensor | None = None
    ) -> torch.Tensor:
        """MFCC of the frames (`mel_power`: their band power @ mel, if already computed; unused with a gain)."""
        if gain2 is None and mel_power is not None:
            logmel = 10.0 * torch.log10(mel_power + self.plan.floor_power)
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
    def prepare_target(self, target: torch.Tensor) -> TargetFeatures:
        """Features of the target audio (`[N]` or `[b, N]`), computed once without gradient."""
        with torch.no_grad():
            return self._target_features(self._sanitize(self._as_batch(target, "target")))

    def _target_features(self, target: torch.Tensor) -> TargetFeatures:
        powers = tuple(self._stft_power(target, n) for n in self.settings.fft_sizes)
        fr = self._frames(target)
        fast = self._fast_path(target, None)
        if fast:  # the renders' own path: identical audio gives identical stats
            dc, clip_fraction, overshoot = _penalty_stats_fast(target, self.settings.clip_threshold)
        else:
            dc, clip_fraction, overshoot = self._penalty_stats(target, self.settings.clip_threshold)
        return TargetFeatures(
            n_samples=target.shape[-1],
            stft_mag=tuple(_magnitude(p, fast) for p in powers),
            stft_logpower=tuple(_log_power(p, fast) for p in powers),
            stft_energy=tuple(p.sum((-1, -2)) for p in powers),
            mfcc=self._mfcc(fr),
            centroid_hz=self._clip_centroid_hz(fr),
            loudness_lufs=batch.clip_loudness_frames(fr),
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

        Runs in row chunks of about `features.batch.CHUNK_FRAMES` analysis frames (cache-friendly: ~1.7x
        faster at B = 64 than one pass; same values, gradients included). `frames`: the renders'
        `features.batch.analyze_frames` at this loss's rate and feature settings, if already computed
        (the same values as computing them here, which is then skipped). `analysis`: the renders'
        `analyze(render)` (then `frames` is ignored), the same values as `compare` computes without it.
        """
        render = self._sanitize(self._as_batch(render, "render"))
        if render.shape[-1] != target.n_samples:
            raise ValueError(f"render has {render.shape[-1]} samples, the prepared target {target.n_samples}")
        b_target = target.mfcc.shape[0]
        if b_target not in (1, render.shape[0]):
            raise ValueError(f"target features have batch {b_target}, renders {render.shape[0]} (need 1 or equal)")
        given = analysis.frames if analysis is not None else frames
        if given is not None and tuple(given.power.shape[:2]) != (render.shape[0], target.mfcc.shape[1]):
            raise ValueError(f"frames {tuple(given.power.shape[:2])} do not belong to these renders and target")
        if analysis is None and frames is not None:
            analysis = self._analysis_of(frames)
        fast = self._fast_path(render, target)
        chunks = batch.row_chunks(render.shape[0], target.mfcc.shape[1])
        if len(chunks) == 1:
            return self._compare(render, target, analysis, fast)
        parts = [
            self._compare(
                render[rows],
                target if b_target == 1 else _rows(target, rows),
                None if analysis is None else _analysis_rows(analysis, rows),
                fast,
            )
            for rows in chunks
        ]
        return LossTerms(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(LossTerms)})

    def _analysis_of(self, fr: batch.Frames, spectra: tuple[torch.Tensor, ...] = ()) -> RenderAnalysis:
        mel_power = fr.power[..., : self.plan.n_band] @ fr.const.mel_t
        loudness = batch.clip_loudness_frames(fr)
        return RenderAnalysis(frames=fr, spectra=spectra, mel_power=mel_power, loudness_lufs=loudness)

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
            analysis = self._analysis_of(self._frames(render))
        fr, loud = analysis.frames, analysis.loudness_lufs
        loudness = (loud - target.loudness_lufs).abs()
        gain2 = None
        if s.normalize_loudness:
            gain2 = torch.pow(10.0, ((target.loudness_lufs - loud) / 10.0).clamp(-60.0, 60.0))
        mr = torch.zeros_like(loud)
        for i, size in enumerate(s.fft_sizes):
            spec = analysis.spectra[i] if analysis.spectra else self._stft(render, size)
            if fast:
                sc, log_l1 = self._stft_terms_fast(spec, gain2, target, i)
            else:
                sc, log_l1 = self._stft_terms(spec, gain2, target, i)
            mr = mr + sc + 0.5 * log_l1  # 0.5: |d ln magnitude|
        mr = mr / len(s.fft_sizes)
        mfcc = (self._mfcc(fr, gain2, analysis.mel_power) - target.mfcc).abs().mean((-1, -2))
        centroid = torch.log2(self._clip_centroid_hz(fr, gain2) / target.centroid_hz).abs()
        if fast:
            dc_r, clip_r, over_r = _penalty_stats_fast(render, s.clip_threshold)
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
        power = _power(spec)
        if gain2 is not None:
            power = power * gain2[:, None, None]
        floor = power.shape[-1] * power.shape[-2] * _LOG_FLOOR_POWER
        distance = torch.sqrt(((power + _SQRT_EPS).sqrt() - target.stft_mag[i]).square().sum((-1, -2)) + 1e-20)
        sc = distance / torch.sqrt(target.stft_energy[i] + floor)
        log_l1 = (torch.log(power + _LOG_FLOOR_POWER) - target.stft_logpower[i]).abs().mean((-1, -2))
        return sc, log_l1

    def _stft_terms_fast(
        self, spec: torch.Tensor, gain2: torch.Tensor | None, target: TargetFeatures, i: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`_stft_terms` without gradient: one numba pass over the spectrum (`loss_kernels.stft_distances`)."""
        n_rows, n_values = spec.shape[0], spec.shape[1] * spec.shape[2]
        gain = torch.ones(n_rows) if gain2 is None else gain2.detach().contiguous()
        sums = loss_kernels.stft_distances(
            torch.view_as_real(spec.detach()).reshape(n_rows, 2 * n_values).numpy(),
            gain.numpy(),
            _flat(target.stft_mag[i]),
            _flat(target.stft_logpower[i]),
            _SQRT_EPS,
            _LOG_FLOOR_POWER,
        )
        sums_t = torch.from_numpy(sums)
        distance = torch.sqrt(sums_t[:, 0].float() + 1e-20)
        sc = distance / torch.sqrt(target.stft_energy[i] + n_values * _LOG_FLOOR_POWER)
        return sc, (sums_t[:, 1] / n_values).float()

    def forward(self, render: torch.Tensor, target: torch.Tensor) -> LossTerms:
        """Loss of renders `[B, N]` against target audio (gradient flows into the target too if it requires it)."""
        target = batch.sanitize(self._as_batch(target, "target"))
        return self.compare(render, self._target_features(target))

    @staticmethod
    def _as_batch(audio: torch.Tensor, what: str) -> torch.Tensor:
        if not isinstance(audio, torch.Tensor) or not audio.is_floating_point():
            raise TypeError(f"{what} must be a floating-point torch.Tensor, got {getattr(audio, 'dtype', type(audio))}")
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        if audio.dim() != 2 or audio.shape[-1] == 0:
            raise ValueError(f"{what} must have shape [B, N] or [N] with N > 0, got {tuple(audio.shape)}")
        return audio


def _flat(values: torch.Tensor) -> np.ndarray:
    """`[b, frames, bins]` -> contiguous float32 `[b, frames * bins]` numpy view (a copy only if strided)."""
    return values.detach().reshape(values.shape[0], -1).contiguous().numpy()


def _magnitude(power: torch.Tensor, fast: bool) -> torch.Tensor:
    """sqrt(power + eps); on the fast path correctly rounded, as the numba kernel takes it (torch's
    vectorized sqrt is off by an ulp now and then), so identical audio gives a distance of exactly 0."""
    if not fast:
        return (power + _SQRT_EPS).sqrt()
    return torch.from_numpy(np.sqrt((power + _SQRT_EPS).numpy()))


def _power(spec: torch.Tensor) -> torch.Tensor:
    return spec.real.square() + spec.imag.square()


def _log_power(power: torch.Tensor, fast: bool) -> torch.Tensor:
    """ln(power + floor); on the fast path with the renders' kernel log (`loss_kernels.ln_into`), so
    identical audio gives a log distance of exactly 0."""
    arg = power + _LOG_FLOOR_POWER
    if not fast:
        return torch.log(arg)
    flat = arg.reshape(arg.shape[0], -1)
    out = torch.empty_like(flat)
    loss_kernels.ln_into(flat.numpy(), out.numpy())
    return out.reshape(arg.shape)


def _penalty_stats_fast(audio: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`PerceptualLoss._penalty_stats` in one numba pass (no gradient)."""
    sums = torch.from_numpy(loss_kernels.penalty_sums(audio.detach().contiguous().numpy(), threshold))
    means = (sums / audio.shape[-1]).float()
    return means[:, 0].abs(), means[:, 1], means[:, 2]


def _analysis_rows(analysis: RenderAnalysis, rows: slice) -> RenderAnalysis:
    fr = analysis.frames
    return RenderAnalysis(
        frames=batch.Frames(plan=fr.plan, const=fr.const, frames=fr.frames[rows], power=fr.power[rows]),
        spectra=tuple(spec[rows] for spec in analysis.spectra),
        mel_power=analysis.mel_power[rows],
        loudness_lufs=analysis.loudness_lufs[rows],
    )


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
