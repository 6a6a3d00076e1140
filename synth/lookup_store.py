"""The chunked params -> descriptors table on disk: plan, sampling, chunk generation, loading.

Input: a `TablePlan` (which parameters vary, how they are sampled, the notes, the probe).
Output: `<dir>/manifest.json` (the plan, the descriptor names, the chunk list) and one
`chunk_<i>.npz` per chunk (`params` [n, 24] float32 normalized, `notes` [n] float32 MIDI,
`descriptors` [n, K] float32: the per-frame mean of `features.batch` descriptors over one probe
render of `synth.render.render_batch`, or over its last `summary_frames` frames: the snapshot
convention of the imitation environment, `agents.imitate.sound`). Chunks are independent and deterministic (row i of the
table depends only on the plan and i), so generation is parallel and resumable: a chunk file
that exists and loads is never redone. The neural proxy's training set is such a table too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy.stats import qmc
from tqdm import tqdm

from features.config import FeatureSettings
from features.names import DESCRIPTOR_NAMES
from synth.params import CONTINUOUS_INDICES, N_PARAMS, PARAM_NAMES, indices_of, snap_vector

TABLE_FORMAT_VERSION = 1
Sampler = Literal["sobol", "grid", "uniform"]


class TableError(ValueError):
    """A table folder or plan that cannot be used (one line, names the folder or field)."""


@dataclass(frozen=True)
class TablePlan:
    n: int  # rows (for "grid": levels ** len(param_names), recomputed)
    param_names: tuple[str, ...]  # the sampled parameters; the others stay at base_0to1
    base_0to1: tuple[float, ...]  # the base preset, 24 normalized values
    sampler: Sampler = "sobol"
    grid_levels: int = 5  # per parameter, for "grid"
    note_low: int = 60  # notes: uniform integers in [note_low, note_high] (one note when equal)
    note_high: int = 60
    chunk_size: int = 4096
    seed: int = 0
    sample_rate_hz: int = 16000
    probe_s: float = 0.5
    render_batch_size: int = 256
    summary_frames: int = 0  # 0: mean over every frame of the probe; n: mean of its last n frames (a snapshot)
    # (name, low_0to1, high_0to1): a sampled parameter drawn from this part of its range instead of [0, 1]
    ranges: tuple[tuple[str, float, float], ...] = ()
    # chance that a sampled continuous parameter sits exactly at an end of its range (either end,
    # equally likely), independently per row and parameter: presets often hold a level, an attack or a
    # modulation at 0 or 1, where a uniform sample almost never lands
    edge_prob: float = 0.0

    def __post_init__(self) -> None:
        if len(self.base_0to1) != N_PARAMS:
            raise TableError(f"base_0to1 must hold {N_PARAMS} values, got {len(self.base_0to1)}")
        if not self.param_names:
            raise TableError("param_names: sample at least one parameter")
        indices_of(self.param_names)  # raises KeyError naming an unknown parameter
        if self.n < 1 or self.chunk_size < 1 or self.render_batch_size < 1:
            raise TableError(
                f"n, chunk_size, render_batch_size must be >= 1, got {self.n}, {self.chunk_size}, "
                f"{self.render_batch_size}"
            )
        if not 0 <= self.note_low <= self.note_high <= 127:
            raise TableError(f"need 0 <= note_low <= note_high <= 127, got {self.note_low}, {self.note_high}")
        if self.summary_frames < 0:
            raise TableError(f"summary_frames must be >= 0, got {self.summary_frames}")
        if self.sampler == "grid" and self.grid_levels < 2:
            raise TableError(f"grid_levels must be >= 2, got {self.grid_levels}")
        for name, low, high in self.ranges:
            if name not in self.param_names:
                raise TableError(f"ranges: '{name}' is not a sampled parameter ({', '.join(self.param_names)})")
            if not 0.0 <= low < high <= 1.0:
                raise TableError(f"ranges: '{name}' needs 0 <= low < high <= 1, got {low}, {high}")
        if len({name for name, _, _ in self.ranges}) != len(self.ranges):
            raise TableError("ranges: a parameter is given twice")
        if not 0.0 <= self.edge_prob <= 1.0:
            raise TableError(f"edge_prob must be in [0, 1], got {self.edge_prob}")

    @property
    def rows(self) -> int:
        return self.grid_levels ** len(self.param_names) if self.sampler == "grid" else self.n

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.rows / self.chunk_size)

    def chunk_range(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_size
        return start, min(self.rows, start + self.chunk_size)


def sample_rows(plan: TablePlan, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows [start, stop) of the plan: params [n, 24] float32 (snapped) and notes [n] float32."""
    idx = indices_of(plan.param_names)
    n = stop - start
    if plan.sampler == "sobol":
        warnings.filterwarnings("ignore", message=".*balance properties of Sobol.*", category=UserWarning)
        sobol = qmc.Sobol(d=len(idx), scramble=True, seed=plan.seed)
        if start:
            sobol.fast_forward(start)
        unit = sobol.random(n)
    elif plan.sampler == "grid":
        levels = np.linspace(0.0, 1.0, plan.grid_levels)
        digits = (
            np.arange(start, stop)[:, None] // plan.grid_levels ** np.arange(len(idx))[None, :]
        ) % plan.grid_levels
        unit = levels[digits]
    else:
        unit = np.random.default_rng([plan.seed, start]).random((n, len(idx)))
    for name, low, high in plan.ranges:
        col = list(idx).index(PARAM_NAMES.index(name))  # indices_of orders the columns as the wire does
        unit[:, col] = low + (high - low) * unit[:, col]
    if plan.edge_prob > 0.0:
        _snap_to_edges(plan, idx, unit, np.random.default_rng([plan.seed, 2, start]))
    params = np.tile(np.asarray(plan.base_0to1, dtype=np.float32), (n, 1))
    params[:, idx] = unit
    rng = np.random.default_rng([plan.seed, 1, start])
    notes = rng.integers(plan.note_low, plan.note_high + 1, size=n).astype(np.float32)
    return snap_vector(params), notes


def _snap_to_edges(plan: TablePlan, idx: tuple[int, ...], unit: np.ndarray, rng: np.random.Generator) -> None:
    """In place: each continuous column's value goes to its range's low or high end with chance edge_prob."""
    ranges = {name: (low, high) for name, low, high in plan.ranges}
    edge = rng.random(unit.shape) < plan.edge_prob
    upper = rng.random(unit.shape) < 0.5
    for col, i in enumerate(idx):
        if i not in CONTINUOUS_INDICES:
            continue
        low, high = ranges.get(PARAM_NAMES[i], (0.0, 1.0))
        unit[edge[:, col], col] = np.where(upper[edge[:, col], col], high, low)


def describe_params(
    params_0to1: np.ndarray, notes: np.ndarray, plan: TablePlan, features: FeatureSettings, seed: int
) -> np.ndarray:
    """Render [n, 24] params at [n] notes; the per-frame mean descriptors [n, K] float32 (`plan.summary_frames`)."""
    import torch

    from features.batch import describe_batch
    from synth.render import render_batch

    out = np.empty((params_0to1.shape[0], len(DESCRIPTOR_NAMES)), dtype=np.float32)
    with torch.no_grad():
        for s in range(0, params_0to1.shape[0], plan.render_batch_size):
            e = s + plan.render_batch_size
            audio = render_batch(
                torch.from_numpy(params_0to1[s:e]),
                torch.from_numpy(notes[s:e]),
                sample_rate_hz=plan.sample_rate_hz,
                duration_s=plan.probe_s,
                seed=seed + s,
            )
            frames = describe_batch(audio, plan.sample_rate_hz, features)
            if plan.summary_frames:
                frames = frames[:, -plan.summary_frames :]
            out[s:e] = frames.mean(dim=1).numpy()
    return out


def chunk_path(folder: Path, index: int) -> Path:
    return folder / f"chunk_{index:05d}.npz"


def make_chunk(folder: Path, plan: TablePlan, features: FeatureSettings, index: int) -> int:
    """Generate and store chunk `index` (written atomically); returns its row count."""
    start, stop = plan.chunk_range(index)
    params, notes = sample_rows(plan, start, stop)
    descriptors = describe_params(params, notes, plan, features, seed=plan.seed * 1_000_003 + start)
    tmp = folder / f".chunk_{index:05d}.tmp.npz"
    np.savez(tmp, params=params, notes=notes, descriptors=descriptors)
    tmp.replace(chunk_path(folder, index))
    return stop - start


def _chunk_ok(folder: Path, plan: TablePlan, index: int) -> bool:
    path = chunk_path(folder, index)
    if not path.is_file():
        return False
    start, stop = plan.chunk_range(index)
    try:
        with np.load(path) as data:
            return data["params"].shape == (stop - start, N_PARAMS) and data["descriptors"].shape[0] == stop - start
    except (OSError, ValueError, KeyError):
        return False


def manifest(plan: TablePlan, features: FeatureSettings) -> dict[str, Any]:
    plan_dict = dataclasses.asdict(plan)
    for key, unset in (("ranges", ()), ("edge_prob", 0.0)):
        if plan_dict[key] == unset:
            del plan_dict[key]  # tables without them keep the manifest they had before these options existed
    data = {
        "format_version": TABLE_FORMAT_VERSION,
        "plan": plan_dict,
        "features": dataclasses.asdict(features),
        "param_order": list(PARAM_NAMES),
        "descriptor_names": list(DESCRIPTOR_NAMES),
        "rows": plan.rows,
        "n_chunks": plan.n_chunks,
    }
    return json.loads(json.dumps(data))  # as it reads back (tuples -> lists)


def _identity(data: dict[str, Any]) -> dict[str, Any]:
    """A manifest without its size: two plans that differ only in n describe the same rows."""
    plan = {k: v for k, v in data.get("plan", {}).items() if k != "n"}
    return {k: v for k, v in data.items() if k not in ("plan", "rows", "n_chunks")} | {"plan": plan}


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def build_table(
    folder: Path, plan: TablePlan, features: FeatureSettings, *, workers: int = 1, progress: bool = True
) -> int:
    """Generate every missing chunk; returns the number of chunks generated now (0: all were there)."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = manifest(plan, features)
    mpath = folder / "manifest.json"
    if mpath.is_file():
        try:
            existing = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise TableError(f"{mpath}: unreadable manifest ({exc})") from exc
        if _identity(existing) != _identity(wanted):
            raise TableError(f"{folder}: holds a table with another plan or feature settings; use a new folder")
    # rows depend only on the plan and their index, so a larger n extends a table (a smaller one truncates it)
    mpath.write_text(json.dumps(wanted, indent=1) + "\n", encoding="utf-8")
    todo = [i for i in range(plan.n_chunks) if not _chunk_ok(folder, plan, i)]
    bar = tqdm(
        total=plan.rows,
        initial=plan.rows - sum(np.diff(plan.chunk_range(i))[0] for i in todo),
        desc="rendering",
        unit="sound",
        disable=not progress,
        smoothing=0.1,
    )
    if workers <= 1 or len(todo) <= 1:
        for i in todo:
            bar.update(make_chunk(folder, plan, features, i))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
            futures = [pool.submit(make_chunk, folder, plan, features, i) for i in todo]
            for future in as_completed(futures):
                bar.update(future.result())
    bar.close()
    return len(todo)


def read_manifest(folder: Path) -> dict[str, Any]:
    mpath = folder / "manifest.json"
    try:
        data = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TableError(f"{mpath}: cannot read the table manifest ({exc})") from exc
    if not isinstance(data, dict) or data.get("format_version") != TABLE_FORMAT_VERSION:
        raise TableError(f"{mpath}: not a lookup table manifest of format {TABLE_FORMAT_VERSION}")
    return data


def iter_chunks(folder: Path) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(params, notes, descriptors) of each finished chunk, in order; missing chunks are left out."""
    data = read_manifest(folder)
    for i in range(int(data["n_chunks"])):
        path = chunk_path(folder, i)
        if path.is_file():
            with np.load(path) as z:
                yield z["params"], z["notes"], z["descriptors"]


def load_table(folder: Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]:
    """(manifest, params [M,24], notes [M], descriptors [M,K]) of every finished chunk."""
    data = read_manifest(folder)
    chunks = list(iter_chunks(folder))
    if not chunks:
        raise TableError(f"{folder}: no finished chunk yet (run python -m synth.lookup build {folder})")
    params, notes, descriptors = (np.concatenate(parts) for parts in zip(*chunks, strict=True))
    return data, params, notes, descriptors
