"""Descriptor statistics from data, for observations and RMSE metrics everywhere.

Input: descriptor values `[N, K]` (frames x descriptors; NaN/Inf entries are ignored per column) and
their names.
Output: `DescriptorStats` (per descriptor: mean, std, robust min / max = the 1st / 99th percentiles,
count), saved and loaded as plain JSON (or embedded as a dict, e.g. in model.yaml), and
`normalize(x)` / `denormalize(x)` for numpy arrays or torch tensors whose last axis follows `names`:
`"minmax"` maps the robust range to [0, 1] (optionally clipped), `"zscore"` to mean 0 / std 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch

from features.names import DESCRIPTOR_NAMES, INDEX

FORMAT = "soundgym.descriptor_stats"
VERSION = 1
_MIN_SCALE = 1e-6  # a constant descriptor gets this std / range (times 1 + |level|), never 0

Mode = Literal["minmax", "zscore"]
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


class StatsError(ValueError):
    """Bad statistics data or file (one line, names the culprit)."""


@dataclass(frozen=True)
class DescriptorStats:
    names: tuple[str, ...]
    mean: np.ndarray  # [K] float64
    std: np.ndarray
    robust_min: np.ndarray
    robust_max: np.ndarray
    count: np.ndarray  # [K] finite values seen per descriptor
    percentiles: tuple[float, float] = (1.0, 99.0)

    def __post_init__(self) -> None:
        k = len(self.names)
        for field in ("mean", "std", "robust_min", "robust_max", "count"):
            if np.shape(getattr(self, field)) != (k,):
                raise StatsError(
                    f"descriptor stats: '{field}' has shape {np.shape(getattr(self, field))}, expected ({k},)"
                )
        unknown = [n for n in self.names if n not in INDEX]
        if unknown:
            raise StatsError(f"descriptor stats: unknown descriptor names {unknown}")

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def from_data(
        cls,
        values: np.ndarray | torch.Tensor,
        names: Iterable[str] = DESCRIPTOR_NAMES,
        percentiles: tuple[float, float] = (1.0, 99.0),
    ) -> DescriptorStats:
        """Statistics of `[N, K]` values (N frames, K = len(names))."""
        data = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
        names = tuple(names)
        data = data.reshape(-1, data.shape[-1]) if data.ndim >= 2 else data.reshape(-1, 1)
        if data.shape[1] != len(names):
            raise StatsError(f"descriptor stats: data has {data.shape[1]} columns for {len(names)} names")
        lo_pct, hi_pct = percentiles
        if not 0 <= lo_pct < hi_pct <= 100:
            raise StatsError(f"descriptor stats: percentiles must satisfy 0 <= lo < hi <= 100, got {percentiles}")
        data = data.astype(np.float64)
        finite = np.isfinite(data)
        count = finite.sum(0)
        empty = [n for n, c in zip(names, count, strict=True) if c == 0]
        if empty:
            raise StatsError(f"descriptor stats: no finite values for {empty}")
        masked = np.where(finite, data, np.nan)
        lo, hi = np.nanpercentile(masked, [lo_pct, hi_pct], axis=0)
        return cls(
            names=names,
            mean=np.nanmean(masked, axis=0),
            std=np.nanstd(masked, axis=0),
            robust_min=lo,
            robust_max=hi,
            count=count.astype(np.int64),
            percentiles=(float(lo_pct), float(hi_pct)),
        )

    def subset(self, names: Iterable[str]) -> DescriptorStats:
        """The statistics of some descriptors, in the given order."""
        names = tuple(names)
        pos = {n: i for i, n in enumerate(self.names)}
        missing = [n for n in names if n not in pos]
        if missing:
            raise StatsError(f"descriptor stats: no statistics for {missing}")
        idx = np.array([pos[n] for n in names], dtype=np.int64)
        return DescriptorStats(
            names=names,
            mean=self.mean[idx],
            std=self.std[idx],
            robust_min=self.robust_min[idx],
            robust_max=self.robust_max[idx],
            count=self.count[idx],
            percentiles=self.percentiles,
        )

    # -- use ---------------------------------------------------------------------------------------------
    def _center_scale(self, mode: Mode) -> tuple[np.ndarray, np.ndarray]:
        if mode == "minmax":
            center, scale = self.robust_min, self.robust_max - self.robust_min
        elif mode == "zscore":
            center, scale = self.mean, self.std
        else:
            raise StatsError(f"normalization mode must be 'minmax' or 'zscore', got {mode!r}")
        return center, np.maximum(scale, _MIN_SCALE * (1.0 + np.abs(center)))

    def normalize(self, x: ArrayT, mode: Mode = "minmax", clip: bool = False) -> ArrayT:
        """`[..., K]` raw values -> normalized ("minmax": robust range -> [0, 1]; "zscore")."""
        center, scale = self._center_scale(mode)
        self._check_width(x)
        if isinstance(x, torch.Tensor):
            c = torch.as_tensor(center, dtype=x.dtype, device=x.device)
            s = torch.as_tensor(scale, dtype=x.dtype, device=x.device)
            y = (x - c) / s
            return y.clamp(0.0, 1.0) if clip and mode == "minmax" else y
        y = (np.asarray(x) - center) / scale
        y = np.clip(y, 0.0, 1.0) if clip and mode == "minmax" else y
        return y.astype(x.dtype if np.issubdtype(np.asarray(x).dtype, np.floating) else np.float64, copy=False)

    def denormalize(self, y: ArrayT, mode: Mode = "minmax") -> ArrayT:
        """Inverse of `normalize` (without clipping)."""
        center, scale = self._center_scale(mode)
        self._check_width(y)
        if isinstance(y, torch.Tensor):
            return y * torch.as_tensor(scale, dtype=y.dtype, device=y.device) + torch.as_tensor(
                center, dtype=y.dtype, device=y.device
            )
        return (np.asarray(y) * scale + center).astype(np.asarray(y).dtype, copy=False)

    def _check_width(self, x: np.ndarray | torch.Tensor) -> None:
        if x.shape[-1] != len(self.names):
            raise StatsError(f"descriptor stats: last axis has {x.shape[-1]} values, stats cover {len(self.names)}")

    # -- JSON --------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "percentiles": list(self.percentiles),
            "descriptors": {
                name: {
                    "mean": float(self.mean[i]),
                    "std": float(self.std[i]),
                    "robust_min": float(self.robust_min[i]),
                    "robust_max": float(self.robust_max[i]),
                    "count": int(self.count[i]),
                }
                for i, name in enumerate(self.names)
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> DescriptorStats:
        try:
            if data.get("format") != FORMAT:
                raise StatsError(f"{source}: not descriptor statistics (format {data.get('format')!r})")
            if data.get("version") != VERSION:
                raise StatsError(f"{source}: descriptor statistics version {data.get('version')!r}, expected {VERSION}")
            entries = data["descriptors"]
            names = tuple(entries)
            columns = {
                key: np.array([float(entries[n][key]) for n in names])
                for key in ("mean", "std", "robust_min", "robust_max")
            }
            count = np.array([int(entries[n]["count"]) for n in names], dtype=np.int64)
            lo, hi = (float(p) for p in data["percentiles"])
        except StatsError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StatsError(f"{source}: malformed descriptor statistics ({type(exc).__name__}: {exc})") from exc
        try:
            return cls(names=names, count=count, percentiles=(lo, hi), **columns)
        except StatsError as exc:
            raise StatsError(f"{source}: {exc}") from exc

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> DescriptorStats:
        file = Path(path)
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise StatsError(f"{file}: cannot read descriptor statistics ({exc.strerror or exc})") from exc
        except json.JSONDecodeError as exc:
            raise StatsError(f"{file}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        if not isinstance(data, dict):
            raise StatsError(f"{file}: descriptor statistics must be a JSON object")
        return cls.from_dict(data, source=str(file))
