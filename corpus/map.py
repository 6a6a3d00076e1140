"""`python -m corpus.map corpus/<name>`: every analyzed frame of a corpus in 2D, coloured by track.

Input: an analyzed corpus (`analysis.json` + `features/*.csv`, from `python -m corpus.analyze`)
and/or a synth lookup table folder (`--lookup DIR`, from `python -m synth.lookup build`).
Output: a PNG (default `corpus/<name>/map.png`, or `<lookup>/map.png`): descriptors z-normalized
(the corpus's `DescriptorStats`, else the table's), projected to 2D by PCA (or t-SNE with
`--method tsne`, scikit-learn). With both, the table's sounds are drawn in grey behind the corpus
frames in one shared projection: where the synth can reach and where the musician plays.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from corpus.track import read_features_csv
from features.names import DESCRIPTOR_NAMES, expand
from features.normalization import DescriptorStats
from settings import SettingsError, load_settings
from synth.lookup_store import TableError, load_table
from synth.params import PARAM_INDEX


class MapError(ValueError):
    """Bad input for the map (one line, names the file or flag)."""


def load_corpus_frames(corpus_dir: Path) -> tuple[np.ndarray, list[str], DescriptorStats]:
    """All frames [N, K], the track of each frame, and the corpus's normalization statistics."""
    report_path = corpus_dir / "analysis.json"
    try:
        report: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MapError(f"{report_path}: cannot read ({exc}); run python -m corpus.analyze {corpus_dir}") from exc
    if not report.get("tracks") or report.get("stats") is None:
        raise MapError(f"{report_path}: no analyzed track to map")
    frames, labels = [], []
    for entry in report["tracks"]:
        names, values = read_features_csv(corpus_dir / entry["features_csv"])
        if names != DESCRIPTOR_NAMES:
            raise MapError(f"{entry['features_csv']}: columns differ from features.names; analyze again")
        frames.append(values)
        labels += [entry["track"]] * values.shape[0]
    return np.concatenate(frames), labels, DescriptorStats.from_dict(report["stats"])


def project(x: np.ndarray, method: str, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(x)
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (x.shape[0] - 1) // 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def subsample(n: int, max_points: int, seed: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def draw_map(
    corpus_dir: Path | None,
    lookup_dir: Path | None,
    out: Path,
    *,
    method: str = "pca",
    names: tuple[str, ...] = DESCRIPTOR_NAMES,
    color_param: str = "filter_cutoff",
    max_points: int = 20000,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the PNG; return what was drawn (point counts, explained variance for PCA)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [DESCRIPTOR_NAMES.index(n) for n in names]
    parts: list[np.ndarray] = []
    labels: list[str] = []
    stats: DescriptorStats | None = None
    if corpus_dir is not None:
        frames, labels, stats = load_corpus_frames(corpus_dir)
        keep = subsample(frames.shape[0], max_points, seed)
        parts.append(frames[keep])
        labels = [labels[i] for i in keep]
    table_params = None
    if lookup_dir is not None:
        _, params, _, descriptors = load_table(lookup_dir)
        keep = subsample(descriptors.shape[0], max_points, seed + 1)
        parts.append(descriptors[keep].astype(np.float64))
        table_params = params[keep]
        if stats is None:
            stats = DescriptorStats.from_data(descriptors.astype(np.float64), DESCRIPTOR_NAMES)
    if stats is None or not parts:
        raise MapError("nothing to map: name a corpus folder and/or --lookup DIR")
    x = np.concatenate(parts)
    z = stats.normalize(x, mode="zscore")[:, cols]
    xy = project(np.nan_to_num(z), method, seed)
    fig, ax = plt.subplots(figsize=(9, 7), dpi=110)
    n_corpus = len(labels)
    if table_params is not None:
        t = xy[n_corpus:]
        if corpus_dir is not None:
            ax.scatter(t[:, 0], t[:, 1], s=3, c="0.8", alpha=0.5, label="synth lookup table", rasterized=True)
        else:
            sc = ax.scatter(
                t[:, 0], t[:, 1], s=3, c=table_params[:, PARAM_INDEX[color_param]], cmap="viridis", rasterized=True
            )
            fig.colorbar(sc, ax=ax, label=f"{color_param} (0..1)")
    tracks = sorted(set(labels))
    cmap = plt.get_cmap("tab10" if len(tracks) <= 10 else "tab20")
    lab = np.asarray(labels)
    for i, track in enumerate(tracks):
        sel = xy[:n_corpus][lab == track]
        ax.scatter(sel[:, 0], sel[:, 1], s=4, color=cmap(i % cmap.N), label=track, alpha=0.7, rasterized=True)
    title = corpus_dir.name if corpus_dir is not None else f"lookup table {lookup_dir}"
    ax.set_title(f"{title}: {x.shape[0]} points, {len(cols)} descriptors, {method.upper()}")
    ax.set_xlabel(f"{method} 1")
    ax.set_ylabel(f"{method} 2")
    if tracks or corpus_dir is not None:
        ax.legend(markerscale=4, fontsize=8, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return {"out": str(out), "corpus_points": n_corpus, "table_points": x.shape[0] - n_corpus, "tracks": tracks}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m corpus.map", description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, nargs="?", default=None, help="analyzed corpus folder")
    parser.add_argument("--lookup", type=Path, default=None, help="a synth lookup table folder to map (too)")
    parser.add_argument("--out", type=Path, default=None, help="PNG path (default: map.png in the corpus/table folder)")
    parser.add_argument("--method", choices=("pca", "tsne"), default="pca")
    parser.add_argument("--descriptors", nargs="+", default=None, help="descriptor names or groups (default: all)")
    parser.add_argument("--color-param", default="filter_cutoff", help="colour of table points when mapped alone")
    parser.add_argument("--max-points", type=int, default=20000, help="random subsample per source above this")
    parser.add_argument(
        "--settings", type=Path, default=None, help="settings YAML (default: environment_settings.yaml)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.settings)
        if args.corpus is None and args.lookup is None:
            raise MapError("name a corpus folder and/or --lookup DIR")
        if args.color_param not in PARAM_INDEX:
            raise MapError(f"--color-param '{args.color_param}' is not a Serum-lite parameter")
        if args.max_points < 10:
            raise MapError(f"--max-points must be >= 10, got {args.max_points}")
        names = expand(args.descriptors) if args.descriptors else DESCRIPTOR_NAMES
        if len(names) < 2:
            raise MapError("--descriptors: a 2D map needs at least 2 descriptors")
        folder = args.corpus if args.corpus is not None else args.lookup
        out = args.out if args.out is not None else folder / "map.png"
        drawn = draw_map(
            args.corpus,
            args.lookup,
            out,
            method=args.method,
            names=names,
            color_param=args.color_param,
            max_points=args.max_points,
            seed=settings.training.seed,
        )
    except (SettingsError, MapError, TableError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{drawn['out']}: {drawn['corpus_points']} corpus frames, {drawn['table_points']} table sounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
