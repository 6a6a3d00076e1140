"""`python -m features describe FILE [--json]`: per-frame descriptors of an audio file.

Input: an audio file (any rate / depth / channels), settings (`--settings`, flags override).
Output (stdout): with `--json`, one object as SPEC: `{"file", "sample_rate", "window_length",
"hop_length", "descriptors": {"time_s": [...], "<name>": [...], ...}}` plus `duration_s`,
`original_sample_rate`, `channels`; without it, a table (a header row, one row a frame).
Bad input: a one-line error naming the culprit on stderr, exit status 2.
`--threads N` (default: the cores available) decodes and analyzes on N threads, one torch thread each;
the values are those of `--threads 1`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence

import torch

from features.audio_io import AudioFileError
from features.names import DESCRIPTOR_NAMES, expand
from features.offline import describe_file
from settings import SettingsError, load_settings, with_overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m features", description="Perceptual descriptors of audio files.")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("describe", help="per-frame descriptors of an audio file")
    d.add_argument("file", help="audio file (WAV, FLAC, AIFF, OGG, MP3; any rate, depth, channel count)")
    d.add_argument("--json", action="store_true", help="print one JSON object (columns by name) instead of a table")
    d.add_argument("--settings", default=None, help="settings YAML (default: environment_settings.yaml)")
    d.add_argument("--sample-rate", type=int, default=None, help="analysis rate in Hz (features.sample_rate_hz)")
    d.add_argument("--window-length", type=int, default=None, help="window in frames (features.window_length)")
    d.add_argument("--hop-length", type=int, default=None, help="hop in frames (features.hop_length)")
    d.add_argument("--only", default=None, help="comma-separated descriptor names or groups (default: all)")
    d.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads decoding and analyzing the file (default: the cores available; 1: serial)",
    )
    return parser


def _number(x: float) -> float | None:
    return round(float(x), 6) if math.isfinite(x) else None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None and args.threads < 1:
        print(f"error: --threads must be >= 1, got {args.threads}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)  # parallelism comes from --threads workers, one torch thread each
    try:
        settings = with_overrides(
            load_settings(args.settings),
            {
                "features.sample_rate_hz": args.sample_rate,
                "features.window_length": args.window_length,
                "features.hop_length": args.hop_length,
            },
        )
        names = (
            DESCRIPTOR_NAMES if args.only is None else expand([n.strip() for n in args.only.split(",") if n.strip()])
        )
        fs = settings.features
        times, values, info = describe_file(args.file, fs, progress=True, threads=args.threads)
    except (SettingsError, AudioFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    columns = [DESCRIPTOR_NAMES.index(n) for n in names]
    if args.json:
        descriptors = {"time_s": [_number(t) for t in times]}
        for name, col in zip(names, columns, strict=True):
            descriptors[name] = [_number(v) for v in values[:, col]]
        doc = {
            "file": args.file,
            "sample_rate": fs.sample_rate_hz,
            "window_length": fs.window_length,
            "hop_length": fs.hop_length,
            "duration_s": round(info.duration_s, 6),
            "original_sample_rate": info.sample_rate_hz,
            "channels": info.channels,
            "descriptors": descriptors,
        }
        text = json.dumps(doc, separators=(",", ":"))
    else:
        lines = ["\t".join(["time_s", *names])]
        for t, row in zip(times, values, strict=True):
            lines.append("\t".join([f"{t:.3f}", *(f"{row[c]:.4g}" for c in columns)]))
        text = "\n".join(lines)
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `| head`: the reader left; not an error of ours
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
