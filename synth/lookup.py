"""`python -m synth.lookup`: the synth lookup table (params -> descriptors) and its queries.

Input: `build DIR`: a sampling plan (Sobol, grid or uniform over all 24 parameters or a chosen
subset, the others at a base preset) rendered through `synth.render.render_batch` and described
by `features.batch` (see `synth.lookup_store` for the layout). `query DIR`: a preset (params ->
nearest stored descriptors) or an audio file (its mean descriptors -> nearest stored parameters).
Output: the table folder; query results printed as JSON.

`LookupTable` answers both ways with nearest neighbours (scikit-learn, KD-tree): on the sampled
parameters for params -> descriptors, and on descriptors z-normalized by the table's own
`DescriptorStats` for descriptors -> params (optionally on a subset of descriptor names).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from features.names import DESCRIPTOR_NAMES, expand
from settings import SettingsError, load_settings, with_overrides
from synth.lookup_store import TableError, TablePlan, build_table, load_table
from synth.params import PARAM_NAMES, default_vector, indices_of, snap_vector


class LookupTable:
    """Nearest-neighbour queries on a finished (or partly finished) table folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest, self.params, self.notes, self.descriptors = load_table(folder)
        self.descriptor_names: tuple[str, ...] = tuple(self.manifest["descriptor_names"])
        if self.descriptor_names != DESCRIPTOR_NAMES:
            raise TableError(f"{folder}: descriptor names differ from features.names (table from another version)")
        self.sampled_indices = indices_of(self.manifest["plan"]["param_names"])
        from features.normalization import DescriptorStats

        self.stats = DescriptorStats.from_data(self.descriptors.astype(np.float64), DESCRIPTOR_NAMES)
        self._by_params = NearestNeighbors(n_neighbors=1, algorithm="kd_tree").fit(self.params[:, self.sampled_indices])
        self._by_descriptors: dict[tuple[str, ...], NearestNeighbors] = {}

    def __len__(self) -> int:
        return int(self.params.shape[0])

    def normalize(self, descriptors: np.ndarray) -> np.ndarray:
        return self.stats.normalize(np.asarray(descriptors, dtype=np.float64), mode="zscore")

    def descriptors_of(self, params_0to1: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """params [Q, 24] -> (descriptors of the nearest stored rows [Q, k, K], their row indices [Q, k])."""
        query = snap_vector(np.atleast_2d(params_0to1))[:, self.sampled_indices]
        _, rows = self._by_params.kneighbors(query, n_neighbors=k)
        return self.descriptors[rows], rows

    def params_of(
        self, descriptors: np.ndarray, k: int = 1, names: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """descriptors [Q, K] (all names, units of features) -> (params [Q, k, 24], distances [Q, k]).

        `names`: match on these descriptors or groups only (e.g. ["loudness_db", "centroid"]).
        """
        chosen = expand(names) if names is not None else DESCRIPTOR_NAMES
        cols = [DESCRIPTOR_NAMES.index(n) for n in chosen]
        if chosen not in self._by_descriptors:
            self._by_descriptors[chosen] = NearestNeighbors(n_neighbors=1, algorithm="kd_tree").fit(
                self.normalize(self.descriptors)[:, cols]
            )
        query = self.normalize(np.atleast_2d(descriptors))[:, cols]
        distances, rows = self._by_descriptors[chosen].kneighbors(query, n_neighbors=k)
        return self.params[rows], distances


def _parse_range(name: str, low: str, high: str) -> tuple[str, float, float]:
    try:
        return name, float(low), float(high)
    except ValueError:
        raise TableError(f"--range {name} {low} {high}: LOW and HIGH must be numbers") from None


def plan_from_args(args: argparse.Namespace, settings: Any) -> TablePlan:
    from synth.presets import factory_presets, load_preset

    if args.base is None:
        base = default_vector()
    elif Path(args.base).is_file():
        base = load_preset(Path(args.base)).params_0to1
    else:
        presets = factory_presets()
        if args.base not in presets:
            raise TableError(
                f"--base '{args.base}': neither a preset file nor a factory preset ({', '.join(sorted(presets))})"
            )
        base = presets[args.base].params_0to1
    names = PARAM_NAMES if args.params is None else tuple(PARAM_NAMES[i] for i in indices_of(args.params))
    ranges = tuple(_parse_range(*r) for r in args.range or ())
    low, high = args.notes if args.notes is not None else (settings.synth.default_note, settings.synth.default_note)
    return TablePlan(
        n=args.n,
        param_names=names,
        base_0to1=tuple(float(v) for v in base),
        sampler=args.sampler,
        grid_levels=args.grid_levels,
        note_low=low,
        note_high=high,
        chunk_size=args.chunk_size,
        seed=settings.synth.seed if args.seed is None else args.seed,
        sample_rate_hz=settings.synth.sample_rate_hz,
        probe_s=settings.synth.probe_s,
        summary_frames=args.summary_frames,
        ranges=ranges,
        edge_prob=args.edge_prob,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m synth.lookup", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--settings", type=Path, default=None, help="settings YAML (default: environment_settings.yaml)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="render the table (resumes: finished chunks are skipped)")
    b.add_argument("folder", type=Path)
    b.add_argument("--n", type=int, default=4096, help="rows to render (grid: levels ** params instead)")
    b.add_argument("--params", nargs="+", default=None, help="parameters (or modules) to sample; default all 24")
    b.add_argument("--base", default=None, help="base preset (file or factory name) for the others; default neutral")
    b.add_argument("--sampler", choices=("sobol", "grid", "uniform"), default="sobol")
    b.add_argument(
        "--range",
        nargs=3,
        action="append",
        metavar=("NAME", "LOW", "HIGH"),
        help="draw a sampled parameter from [LOW, HIGH] (normalized) instead of [0, 1]; repeatable",
    )
    b.add_argument(
        "--edge-prob",
        type=float,
        default=0.0,
        metavar="P",
        help="chance that a sampled continuous parameter sits exactly at 0 or 1 (the ends of its --range)",
    )
    b.add_argument("--grid-levels", type=int, default=5)
    b.add_argument(
        "--notes",
        type=int,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=None,
        help="MIDI note range (uniform integers); default synth.default_note",
    )
    b.add_argument("--chunk-size", type=int, default=4096, help="rows per chunk file")
    b.add_argument("--seed", type=int, default=None, help="default: synth.seed")
    b.add_argument("--workers", type=int, default=0, help="processes (0: all cores)")
    b.add_argument("--sample-rate-hz", type=int, default=None, help="render rate (default synth.sample_rate_hz)")
    b.add_argument("--probe-s", type=float, default=None, help="probe length (default synth.probe_s)")
    b.add_argument("--summary-frames", type=int, default=0, help="0: mean over the probe; n: mean of its last n frames")
    q = sub.add_parser("query", help="nearest neighbours: --preset FILE (-> descriptors) or --audio FILE (-> params)")
    q.add_argument("folder", type=Path)
    group = q.add_mutually_exclusive_group(required=True)
    group.add_argument("--preset", type=Path, help="a preset JSON: print the nearest stored row's descriptors")
    group.add_argument("--audio", type=Path, help="an audio file: print the parameters of the nearest sound")
    q.add_argument("--names", nargs="+", default=None, help="match on these descriptors/groups only (--audio)")
    q.add_argument("-k", type=int, default=1, help="neighbours")
    return parser


def _query(args: argparse.Namespace, settings: Any) -> dict[str, Any]:
    table = LookupTable(args.folder)
    if args.preset is not None:
        from synth.presets import load_preset

        vector = load_preset(args.preset).params_0to1
        descriptors, rows = table.descriptors_of(vector, k=args.k)
        return {
            "preset": str(args.preset),
            "rows": rows[0].tolist(),
            "neighbours": [dict(zip(DESCRIPTOR_NAMES, map(float, d), strict=True)) for d in descriptors[0]],
        }
    from features.offline import describe_file

    _, frames, _ = describe_file(args.audio, settings.features)
    params, distances = table.params_of(frames.mean(axis=0), k=args.k, names=args.names)
    return {
        "audio": str(args.audio),
        "distances": distances[0].tolist(),
        "neighbours": [dict(zip(PARAM_NAMES, map(float, p), strict=True)) for p in params[0]],
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.settings)
        if args.command == "build":
            settings = with_overrides(
                settings, {"synth.sample_rate_hz": args.sample_rate_hz, "synth.probe_s": args.probe_s}
            )
            plan = plan_from_args(args, settings)
            workers = args.workers or os.cpu_count() or 1
            done = build_table(args.folder, plan, settings.features, workers=workers)
            print(f"{args.folder}: {plan.rows} rows in {plan.n_chunks} chunks ({done} rendered now)")
        else:
            print(json.dumps(_query(args, settings), indent=1))
    except (SettingsError, TableError, KeyError, ValueError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
