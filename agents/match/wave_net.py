"""The wave net: which oscillator waves a target sound was made with, heard once, no renders.

Input: the target's probe audio `[P, N]` (what the matching agent hears) and what the agent knows
besides: the held parameters (the target's values outside the curriculum stage) and the stage's
mask. Output: per oscillator (osc1, osc2), logits over `bins` equal bins of the normalized wave
morph (sine 0 -> saw 1/3 -> square 2/3 -> triangle 1), and `wave_starts`: the policy's patches
with both waves set to the centre of the most likely bin.

Why: where the hybrid agent (`agents.match.refine`) fails at stages 1-3 it has almost always
left a wave morph in another basin (sine and triangle sit at the two ends of the morph and sound
alike; Adam cannot cross the saw and square between them), and a forward search through the
neural proxy picks waves poorly once the filter moves (stage 2). This net is the inverse model for
that one question, trained by cross-entropy so that it can say "sine or triangle" without
averaging them into a saw. Its input is the probe's log power spectrum (Hann, `n_fft` frames every
`hop` frames between `start_s` and `end_s`, averaged; the maximum subtracted and appended), fine
enough to resolve the harmonics of the probe's note, standardized by the training set's mean and
std, followed by the held parameters (0 where active) and the active mask. An auxiliary head
regresses the oscillator levels, noise and master volume (training signal only).

Saved pickle-free: `wave_net.safetensors` (layers, input mean and std) and `wave_net.yaml` (layer
sizes, bins, spectrum settings, the stages and probe it was trained for, training facts). Trained
by `python -m agents.match.wave_net_train`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from agents.match.curriculum import N_STAGES, active_mask
from synth.params import N_PARAMS, PARAM_NAMES

WEIGHTS_FILE = "wave_net.safetensors"
META_FILE = "wave_net.yaml"
FORMAT_VERSION = 1
WAVE_COLUMNS = (PARAM_NAMES.index("osc1_wave"), PARAM_NAMES.index("osc2_wave"))
AUX_COLUMNS = tuple(PARAM_NAMES.index(n) for n in ("osc1_level", "osc2_level", "noise_level", "master_volume"))
LOG_FLOOR = 1e-10  # power floor before log10 (silence -> -10)


class WaveNetError(ValueError):
    """A missing, corrupt or mismatched wave net (one line, names the file)."""


@dataclass(frozen=True)
class SpectrumSettings:
    """The net's input spectrum: Hann frames of `n_fft` every `hop` frames in [start_s, end_s)."""

    sample_rate_hz: int = 16_000
    n_fft: int = 2048
    hop: int = 512
    start_s: float = 0.05
    end_s: float = 0.35

    def __post_init__(self) -> None:
        if self.n_fft < 16 or self.hop < 1 or self.sample_rate_hz < 1000:
            raise ValueError(f"spectrum: need n_fft >= 16, hop >= 1, sample_rate_hz >= 1000, got {self}")
        if self.frame_starts().size == 0:
            raise ValueError(f"spectrum: [{self.start_s}, {self.end_s}) s holds no {self.n_fft}-frame window")

    def frame_starts(self) -> np.ndarray:
        lo, hi = int(round(self.start_s * self.sample_rate_hz)), int(round(self.end_s * self.sample_rate_hz))
        return np.arange(max(lo, 0), hi - self.n_fft + 1, self.hop)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1


def log_spectrum(audio: Tensor, spectrum: SpectrumSettings) -> np.ndarray:
    """`[P, N]` probe audio -> `[P, n_fft // 2 + 1]` float32 log10 mean power over the frames."""
    starts = spectrum.frame_starts()
    if audio.ndim != 2 or audio.shape[1] < starts[-1] + spectrum.n_fft:
        raise ValueError(
            f"wave net: probe audio {tuple(audio.shape)} is shorter than the spectrum's last frame "
            f"({starts[-1] + spectrum.n_fft} samples at {spectrum.sample_rate_hz} Hz)"
        )
    window = torch.hann_window(spectrum.n_fft, dtype=torch.float32)
    with torch.no_grad():
        frames = torch.stack([audio[:, s : s + spectrum.n_fft].float() for s in starts], dim=1) * window
        power = torch.fft.rfft(frames).abs().pow(2).mean(dim=1)
        return torch.log10(power + LOG_FLOOR).numpy().astype(np.float32)


def spectrum_inputs(log_power: np.ndarray) -> np.ndarray:
    """Level-free shape plus level: the spectrum minus its maximum, then the maximum `[P, bins + 1]`."""
    top = log_power.max(axis=1, keepdims=True)
    return np.concatenate([log_power - top, top], axis=1).astype(np.float32)


def context_inputs(params_0to1: np.ndarray, stages: np.ndarray | int) -> np.ndarray:
    """What the agent knows besides the sound: held parameters (0 where active), then the mask `[P, 48]`."""
    params = np.asarray(params_0to1, dtype=np.float32)
    rows = np.broadcast_to(np.asarray(stages), (len(params),))
    masks = np.stack([active_mask(s) for s in range(1, N_STAGES + 1)])[rows - 1]
    return np.concatenate([(1.0 - masks) * params, masks], axis=1).astype(np.float32)


class WaveNet(nn.Module):
    """SiLU MLP: standardized spectrum inputs + context -> wave-bin logits [B, 2, bins] and aux [B, 4]."""

    def __init__(self, n_spectrum: int, hidden: Sequence[int], bins: int) -> None:
        super().__init__()
        if bins < 2 or not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"WaveNet: need bins >= 2 and positive hidden sizes, got {bins}, {list(hidden)}")
        self.hidden, self.bins = tuple(int(h) for h in hidden), int(bins)
        n_in = n_spectrum + 2 * N_PARAMS
        layers: list[nn.Module] = []
        for width in self.hidden:
            layers += [nn.Linear(n_in, width), nn.SiLU()]
            n_in = width
        self.body = nn.Sequential(*layers)
        self.waves = nn.Linear(n_in, 2 * self.bins)
        self.aux = nn.Linear(n_in, len(AUX_COLUMNS))
        self.register_buffer("in_mean", torch.zeros(n_spectrum))
        self.register_buffer("in_std", torch.ones(n_spectrum))

    def forward(self, spectrum_in: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([(spectrum_in - self.in_mean) / self.in_std, context], dim=1)
        h = self.body(x)
        return self.waves(h).view(-1, 2, self.bins), self.aux(h)

    def bin_centres(self) -> np.ndarray:
        return ((np.arange(self.bins) + 0.5) / self.bins).astype(np.float32)


@dataclass
class LoadedWaveNet:
    """A wave net with the spectrum and stages it was trained for."""

    net: WaveNet
    spectrum: SpectrumSettings
    stages: tuple[int, ...]
    meta: dict[str, Any]

    def logits(self, audio: Tensor, params_0to1: np.ndarray, stage: int) -> np.ndarray:
        """`[P, 2, bins]` wave-bin logits for the targets' probe audio at `stage`."""
        if stage not in self.stages:
            raise WaveNetError(f"the wave net was trained for stages {list(self.stages)}, not stage {stage}")
        spec = torch.from_numpy(spectrum_inputs(log_spectrum(audio, self.spectrum)))
        context = torch.from_numpy(context_inputs(params_0to1, stage))
        with torch.inference_mode():
            return self.net(spec, context)[0].numpy()


def wave_starts(loaded: LoadedWaveNet, audio: Tensor, patches_0to1: np.ndarray, stage: int) -> np.ndarray:
    """`[P, 1, 24]`: each patch with osc1 and osc2 waves at the centre of their most likely bin
    (the held parameters of the patches are the target's, as the net's context wants)."""
    patches = np.asarray(patches_0to1, dtype=np.float32)
    if patches.ndim != 2 or patches.shape[1] != N_PARAMS or len(patches) != audio.shape[0]:
        raise ValueError(f"wave_starts: patches {patches.shape} and audio {tuple(audio.shape)} do not pair up")
    logits = loaded.logits(audio, patches, stage)
    out = patches.copy()
    out[:, list(WAVE_COLUMNS)] = loaded.net.bin_centres()[logits.argmax(axis=-1)]
    return out[:, None, :]


def save_wave_net(
    folder: str | Path, net: WaveNet, spectrum: SpectrumSettings, stages: Sequence[int], facts: dict[str, Any]
) -> None:
    """Write `wave_net.safetensors` and `wave_net.yaml` into `folder` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(folder / WEIGHTS_FILE))
    meta = {
        "format_version": FORMAT_VERSION,
        "file": WEIGHTS_FILE,
        "param_order": list(PARAM_NAMES),
        "hidden": list(net.hidden),
        "bins": net.bins,
        "activation": "silu",
        "spectrum": asdict(spectrum),
        "stages": [int(s) for s in stages],
        "input": "log10 mean power spectrum minus its max, the max, (standardized); held params; active mask",
        "output": "logits over equal bins of osc1_wave and osc2_wave (normalized morph)",
        "training": facts,
    }
    (folder / META_FILE).write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")


def load_wave_net(folder: str | Path) -> LoadedWaveNet:
    """Read a wave net folder; `WaveNetError` naming the file on anything missing or mismatched."""
    folder = Path(folder)
    meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
    try:
        meta = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise WaveNetError(f"{meta_path}: cannot read the wave net's description ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise WaveNetError(f"{meta_path}: not a wave net description (format_version {FORMAT_VERSION} expected)")
    if meta.get("param_order") != list(PARAM_NAMES):
        raise WaveNetError(f"{meta_path}: param_order differs from this synth's parameter table")
    try:
        spectrum = SpectrumSettings(**meta["spectrum"])
        stages = tuple(int(s) for s in meta["stages"])
        net = WaveNet(spectrum.n_bins + 1, meta["hidden"], int(meta["bins"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise WaveNetError(f"{meta_path}: bad wave net description ({exc})") from exc
    if not stages or any(s not in range(1, N_STAGES + 1) for s in stages):
        raise WaveNetError(f"{meta_path}: stages must list curriculum stages 1..{N_STAGES}, got {list(stages)}")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise WaveNetError(f"{weights_path}: cannot read the wave net's weights ({exc})") from exc
    try:
        net.load_state_dict(tensors)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise WaveNetError(f"{weights_path}: weights do not match {META_FILE} ({str(exc).splitlines()[0]})") from exc
    net.eval()
    return LoadedWaveNet(net, spectrum, stages, meta)
