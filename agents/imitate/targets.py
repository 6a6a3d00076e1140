"""Target descriptor streams for the imitation environment.

Input: an analysed corpus folder (`corpus/<name>/features/<track>.csv`: a header row `time_s` then
descriptor names, one row a frame; `analysis.json` beside it), or the synth itself (random targets).
Output:
- `TargetCorpus`: every track as a `[T, K]` array over `DESCRIPTOR_NAMES` (columns the CSV lacks
  are NaN, which only matters if they are observed), the analysis hop (`tick_s`) and
  `corpus_scale()`, the robust per-descriptor range (1st..99th percentile over all frames)
  used to normalize observations, rewards and the evaluation RMSE;
- `random_target_pool()`: descriptor frames of random presets at random notes (static_random /
  dynamic_random modes, as RL-impro).

Errors name the file: a missing folder, a CSV without a header, or no frames at all.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.imitate.sound import SoundDescriber
from agents.observation import DescriptorScale
from features.names import DESCRIPTOR_NAMES, INDEX, N_DESCRIPTORS
from synth.params import N_PARAMS

SCALE_PERCENTILES = (1.0, 99.0)


@dataclass(frozen=True)
class TargetCorpus:
    path: Path
    track_names: tuple[str, ...]
    tracks: tuple[np.ndarray, ...]  # each [T_i, N_DESCRIPTORS] float64
    tick_s: float  # seconds between frames

    @property
    def n_frames(self) -> int:
        return int(sum(t.shape[0] for t in self.tracks))

    def all_frames(self) -> np.ndarray:
        return np.concatenate(self.tracks, axis=0)


def read_feature_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One track's CSV -> (time_s [T], frames [T, N_DESCRIPTORS] with NaN for absent columns)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not rows or not rows[0] or rows[0][0] != "time_s":
        raise ValueError(f"{path}: expected a header row starting with 'time_s'")
    header = rows[0]
    try:
        data = np.array([[float(v) for v in row] for row in rows[1:] if row], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: non-numeric value ({exc})") from exc
    if data.size == 0:
        return np.zeros(0), np.zeros((0, N_DESCRIPTORS))
    if data.shape[1] != len(header):
        raise ValueError(f"{path}: rows have {data.shape[1]} values, header has {len(header)}")
    frames = np.full((data.shape[0], N_DESCRIPTORS), np.nan)
    for col, name in enumerate(header[1:], start=1):
        if name in INDEX:
            frames[:, INDEX[name]] = data[:, col]
    return data[:, 0], frames


def load_corpus(corpus_dir: str | Path, required: tuple[str, ...] = ()) -> TargetCorpus:
    """Read every `features/*.csv` of an analysed corpus (sorted by name)."""
    root = Path(corpus_dir)
    feature_dir = root / "features"
    if not feature_dir.is_dir():
        raise ValueError(f"{feature_dir}: no analysed features (run `python -m corpus.analyze {root}` first)")
    names, tracks, hops = [], [], []
    for path in sorted(feature_dir.glob("*.csv")):
        times, frames = read_feature_csv(path)
        if frames.shape[0] < 2:
            continue
        missing = [n for n in required if np.all(np.isnan(frames[:, INDEX[n]]))]
        if missing:
            raise ValueError(f"{path}: missing descriptor column(s) {', '.join(missing)}")
        names.append(path.stem)
        tracks.append(np.nan_to_num(frames, nan=0.0))
        hops.append(float(np.median(np.diff(times))))
    if not tracks:
        raise ValueError(f"{feature_dir}: no track with at least 2 frames")
    return TargetCorpus(root, tuple(names), tuple(tracks), tick_s=float(np.median(hops)))


def corpus_scale(corpus: TargetCorpus, names: tuple[str, ...] = DESCRIPTOR_NAMES) -> DescriptorScale:
    """Robust range of each descriptor over the corpus frames (percentiles, a flat one widened)."""
    frames = corpus.all_frames()[:, [INDEX[n] for n in names]]
    lo, hi = np.nanpercentile(frames, SCALE_PERCENTILES, axis=0)
    lo = np.nan_to_num(lo, nan=0.0)
    hi = np.nan_to_num(hi, nan=1.0)
    flat = hi - lo < 1e-6
    hi = np.where(flat, lo + 1.0, hi)
    return DescriptorScale(tuple(names), lo.astype(np.float64), hi.astype(np.float64))


def random_presets(rng: np.random.Generator, n: int, start: np.ndarray, controlled: tuple[int, ...]) -> np.ndarray:
    """`[n, 24]` presets: `start` with the controlled parameters drawn uniformly in [0,1]."""
    presets = np.repeat(np.asarray(start, dtype=np.float32)[None, :], n, axis=0)
    presets[:, list(controlled)] = rng.random((n, len(controlled)), dtype=np.float32)
    if presets.shape[1] != N_PARAMS:
        raise ValueError(f"start preset must have {N_PARAMS} values, got {presets.shape[1]}")
    return presets


def random_target_pool(
    describer: SoundDescriber,
    rng: np.random.Generator,
    n: int,
    start: np.ndarray,
    controlled: tuple[int, ...],
    note_range_midi: tuple[int, int] = (40, 76),
) -> np.ndarray:
    """Descriptor frames `[n, N_DESCRIPTORS]` of random presets at random notes (gate on)."""
    presets = random_presets(rng, n, start, controlled)
    notes = rng.integers(note_range_midi[0], note_range_midi[1] + 1, size=n).astype(np.float32)
    return describer.describe(presets, notes, np.ones(n, dtype=bool))
