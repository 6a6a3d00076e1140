"""Writes the Pure Data and Max patches from the parameter table and the OSC settings.

Input: `synth.params.PARAMS` and the `osc:` settings (`send_port`: where the patches listen;
`listen_host`/`listen_port`: where they send control and features to the server; with
`format: wekinator`, parameters arrive as `/wek/outputs` on `wekinator_out_port` and features go
as `/wek/inputs` to `wekinator_in_port`).
Output: `patches/serumlite.pd`, `patches/serumlite_features.pd`, `patches/serumlite.maxpat`.
Deterministic: regenerating gives identical files; `--check` exits 1 when a file is out of date.

    python patches/generate.py [--check] [--out DIR] [--settings FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `patches` and `synth` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from patches import features_pd, maxpat, serumlite_pd
from server.config import OscSettings
from settings.loader import SettingsError, load_settings

PATCH_DIR = Path(__file__).resolve().parent
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def render_all(osc: OscSettings) -> dict[str, str]:
    """File name -> text, for the given OSC settings."""
    server_host = "127.0.0.1" if osc.listen_host in WILDCARD_HOSTS else osc.listen_host
    if osc.format == "wekinator":  # params as /wek/outputs to 12000, features as /wek/inputs to 6448
        wekinator_port: int | None = osc.wekinator_out_port
        features = features_pd.build(server_host, osc.wekinator_in_port, address="/wek/inputs")
    else:
        wekinator_port, features = None, features_pd.build(server_host, osc.listen_port)
    return {
        "serumlite.pd": serumlite_pd.build(osc.send_port, server_host, osc.listen_port, wekinator_port),
        "serumlite_features.pd": features,
        "serumlite.maxpat": maxpat.build(osc.send_port, server_host, osc.listen_port, wekinator_port),
    }


def stale_files(osc: OscSettings, out_dir: Path) -> list[str]:
    """Names of the files in `out_dir` that differ from what the generator writes (or are missing)."""
    stale = []
    for name, text in render_all(osc).items():
        path = out_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=PATCH_DIR, help="folder to write into (default: patches/)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    parser.add_argument("--settings", type=Path, default=None, help="settings YAML (default: repo settings)")
    args = parser.parse_args(argv)
    try:
        osc = load_settings(args.settings).osc
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = stale_files(osc, args.out)
        for name in stale:
            print(f"out of date: {args.out / name} (run: python patches/generate.py)", file=sys.stderr)
        return 1 if stale else 0
    if not args.out.is_dir():
        print(f"error: --out {args.out}: not a folder", file=sys.stderr)
        return 2
    for name, text in render_all(osc).items():
        (args.out / name).write_text(text, encoding="utf-8")
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
