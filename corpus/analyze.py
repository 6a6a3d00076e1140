"""`python -m corpus.analyze corpus/<name>`: descriptor tables and a report for a whole corpus.

Input: `corpus/<name>/audio/` (any audio files, in subfolders too), settings (`features:`, `corpus:`).
Output: `corpus/<name>/features/<track>.csv` per analyzed track and `corpus/<name>/analysis.json`
(tracks analyzed, tracks skipped with a reason each, normalization statistics over all frames).
Tracks run in a process pool (`corpus.workers`, 0: all cores). Resumable: a track whose content
hash and settings hash match the previous report is not analyzed again. Exit 0 when at least one
track was analyzed, 1 when none, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from corpus.report import (
    REPORT_FORMAT_VERSION,
    ReportError,
    file_sha256,
    list_audio,
    load_report,
    previous_entries,
    settings_hash,
    track_name,
    write_report,
)
from corpus.track import analyze_track, read_features_csv
from features.names import DESCRIPTOR_NAMES
from features.normalization import DescriptorStats
from settings import Settings, SettingsError, load_settings, with_overrides

Job = tuple[Path, str, str, str]  # path, file relative to audio/, track name, sha256


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_jobs(
    jobs: list[Job], features_dir: Path, settings: Settings, key: str, workers: int, progress: bool
) -> list[dict[str, Any]]:
    """Analyze the jobs, in a process pool when workers > 1; entries come back in job order."""
    args = [
        (p, rel, name, features_dir, settings.features, settings.corpus.min_duration_s, sha, key)
        for p, rel, name, sha in jobs
    ]
    bar = tqdm(total=len(jobs), desc="analyzing", unit="track", disable=not progress or not jobs)
    results: dict[int, dict[str, Any]] = {}
    if workers <= 1 or len(jobs) <= 1:
        for i, a in enumerate(args):
            results[i] = _safe(analyze_track, a)
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
            futures: dict[Future[dict[str, Any]], int] = {
                pool.submit(_safe, analyze_track, a): i for i, a in enumerate(args)
            }
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
    bar.close()
    return [results[i] for i in range(len(jobs))]


def _safe(fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> dict[str, Any]:
    """A failure inside one track's analysis becomes a skip reason, never a crashed batch."""
    _, rel, name, *_, sha, key = args
    try:
        return fn(*args)
    except Exception as exc:
        return {
            "file": rel,
            "track": name,
            "sha256": sha,
            "settings": key,
            "reason": f"analysis failed: {type(exc).__name__}: {str(exc).strip()[:200]}",
        }


def compute_stats(corpus_dir: Path, tracks: Iterable[dict[str, Any]]) -> DescriptorStats:
    frames = []
    for entry in tracks:
        names, table = read_features_csv(corpus_dir / entry["features_csv"])
        if names != DESCRIPTOR_NAMES:
            raise ValueError(f"{entry['features_csv']}: columns differ from features.names.DESCRIPTOR_NAMES")
        frames.append(table)
    return DescriptorStats.from_data(np.concatenate(frames, axis=0), DESCRIPTOR_NAMES)


def analyze_corpus(
    corpus_dir: Path, settings: Settings, *, force: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Analyze (or resume) one corpus; write and return its report."""
    audio_dir = corpus_dir / "audio"
    features_dir = corpus_dir / "features"
    report_path = corpus_dir / "analysis.json"
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"{corpus_dir}: no audio/ folder (expected {audio_dir}/<track>.wav ...)")
    features_dir.mkdir(exist_ok=True)
    previous = load_report(report_path)
    old = {} if force else previous_entries(previous)
    key = settings_hash(settings.features, settings.corpus.min_duration_s)
    candidates, skipped = list_audio(audio_dir)
    kept: list[dict[str, Any]] = []
    jobs: list[Job] = []
    names: set[str] = set()
    for path in candidates:
        rel = path.relative_to(audio_dir).as_posix()
        name = track_name(audio_dir, path)
        sha = file_sha256(path)
        if name in names:
            skipped.append({"file": rel, "track": name, "sha256": sha, "reason": f"duplicate track name '{name}'"})
            continue
        names.add(name)
        entry = old.get(rel)
        if (
            entry is not None
            and entry.get("sha256") == sha
            and entry.get("settings") == key
            and ("reason" in entry or (corpus_dir / str(entry.get("features_csv"))).is_file())
        ):
            kept.append(entry)
        else:
            jobs.append((path, rel, name, sha))
    workers = settings.corpus.workers or os.cpu_count() or 1
    fresh = run_jobs(jobs, features_dir, settings, key, min(workers, max(1, len(jobs))), progress)
    entries = sorted(kept + fresh, key=lambda e: e["file"])
    tracks = [e for e in entries if "reason" not in e]
    skipped = sorted(skipped + [e for e in entries if "reason" in e], key=lambda e: e["file"])
    _remove_stale_csvs(corpus_dir, previous, tracks)
    report: dict[str, Any] = {
        "format_version": REPORT_FORMAT_VERSION,
        "corpus": corpus_dir.name,
        "settings_hash": key,
        "features": dataclasses.asdict(settings.features),
        "descriptor_names": list(DESCRIPTOR_NAMES),
        "n_frames": int(sum(e["frames"] for e in tracks)),
        "duration_s": round(sum(e["duration_s"] for e in tracks), 3),
        "tracks": tracks,
        "skipped": skipped,
        "reused": len(kept),
        "stats": compute_stats(corpus_dir, tracks).to_dict() if tracks else None,
    }
    write_report(report_path, report)
    return report


def _remove_stale_csvs(corpus_dir: Path, previous: dict[str, Any] | None, tracks: list[dict[str, Any]]) -> None:
    """Delete CSVs this tool wrote earlier for tracks that are gone or now skipped (never other files)."""
    current = {e["features_csv"] for e in tracks}
    for entry in (previous or {}).get("tracks", []):
        csv = entry.get("features_csv") if isinstance(entry, dict) else None
        if isinstance(csv, str) and csv not in current and csv.startswith("features/"):
            (corpus_dir / csv).unlink(missing_ok=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m corpus.analyze", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "corpus",
        type=Path,
        nargs="?",
        default=None,
        help="corpus folder holding audio/ (default: settings corpus.default)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (0: all cores; settings corpus.workers)"
    )
    parser.add_argument("--min-duration-s", type=float, default=None, help="shorter tracks are skipped")
    parser.add_argument("--force", action="store_true", help="analyze every track again, ignoring the previous report")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    parser.add_argument(
        "--settings", type=Path, default=None, help="settings YAML (default: environment_settings.yaml)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = with_overrides(
            load_settings(args.settings), {"corpus.workers": args.workers, "corpus.min_duration_s": args.min_duration_s}
        )
        if settings.corpus.workers < 0:
            raise SettingsError(f"corpus.workers must be >= 0, got {settings.corpus.workers}")
        corpus_dir = args.corpus if args.corpus is not None else Path(settings.corpus.default)
        report = analyze_corpus(corpus_dir, settings, force=args.force, progress=not args.quiet)
    except (SettingsError, FileNotFoundError, ReportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n_ok, n_skip = len(report["tracks"]), len(report["skipped"])
    if not args.quiet:
        print(
            f"{corpus_dir}: {n_ok} tracks analyzed ({report['reused']} unchanged), {n_skip} skipped, "
            f"{report['n_frames']} frames -> {corpus_dir / 'analysis.json'}"
        )
        for entry in report["skipped"]:
            print(f"  skipped {entry['file']}: {entry['reason']}")
        for entry in report["tracks"]:
            for warning in entry["warnings"]:
                print(f"  warning {entry['file']}: {warning}")
    if n_ok == 0:
        print(f"error: {corpus_dir}: no track could be analyzed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
