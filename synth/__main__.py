"""`python -m synth params [--json]` and `python -m synth render PRESET.json --note 60 --seconds 0.5 --out x.wav`.

Input: the parameter table, or a preset file. Output: the table on stdout, or a WAV file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from synth.params import PARAM_TABLE_VERSION, table_as_dicts


def _print_params(as_json: bool) -> int:
    rows = table_as_dicts()
    if as_json:
        json.dump({"version": PARAM_TABLE_VERSION, "parameters": rows}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    print(f"Serum-lite parameters (table version {PARAM_TABLE_VERSION})")
    for r in rows:
        snap = " snapped" if r["snap"] else ""
        print(
            f"{r['index']:>2} {r['name']:<18} {r['module']:<7} {r['low']:g}..{r['high']:g} "
            f"{r['unit']} ({r['curve']}{snap})"
        )
    return 0


def _render(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile as sf
    import torch

    from settings import SettingsError, load_settings, with_overrides
    from synth.presets import PresetError, load_preset
    from synth.render import render_batch

    try:
        settings = load_settings(args.settings)
        settings = with_overrides(settings, {"synth.sample_rate_hz": args.sample_rate})
        preset = load_preset(args.preset)
    except (SettingsError, PresetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    note = args.note if args.note is not None else (preset.note if preset.note is not None else 60)
    if not 0 <= note <= 127:
        print(f"error: --note must be a MIDI note 0..127, got {note}", file=sys.stderr)
        return 2
    if not 0.0 < args.seconds <= 60.0:
        print(f"error: --seconds must be in (0, 60], got {args.seconds}", file=sys.stderr)
        return 2
    note_off_s = None if args.release_s <= 0 else max(args.seconds - args.release_s, 0.0)
    with torch.no_grad():
        audio = render_batch(
            torch.from_numpy(preset.params_0to1).unsqueeze(0),
            torch.tensor([float(note)]),
            sample_rate_hz=settings.synth.sample_rate_hz,
            duration_s=args.seconds,
            note_off_s=note_off_s,
            seed=settings.synth.seed,
        )[0].numpy()
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, audio.astype(np.float32), settings.synth.sample_rate_hz, subtype="PCM_16")
    except (OSError, RuntimeError) as exc:
        print(f"error: {out}: cannot write WAV ({exc})", file=sys.stderr)
        return 2
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    print(f"wrote {out} ({preset.name}, note {note}, {args.seconds:g} s, peak {peak:.3f})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth", description="Serum-lite synthesizer tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_params = sub.add_parser("params", help="print the 24-parameter table")
    p_params.add_argument("--json", action="store_true", help="machine-readable output")
    p_render = sub.add_parser("render", help="render a preset to a WAV file")
    p_render.add_argument("preset", help="preset JSON file (see schemas/serum_lite_preset.schema.json)")
    p_render.add_argument("--note", type=int, default=None, help="MIDI note (default: the preset's, else 60)")
    p_render.add_argument("--seconds", type=float, default=0.5, help="length of the render in seconds")
    p_render.add_argument("--release-s", type=float, default=0.0, help="release the note this long before the end")
    p_render.add_argument("--sample-rate", type=int, default=None, help="override synth.sample_rate_hz")
    p_render.add_argument("--out", required=True, help="output WAV path")
    p_render.add_argument("--settings", default=None, help="settings file (default: environment_settings.yaml)")
    args = parser.parse_args(argv)
    if args.command == "params":
        return _print_params(args.json)
    return _render(args)


if __name__ == "__main__":
    raise SystemExit(main())
