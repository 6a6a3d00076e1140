"""`python -m synth params [--json]` (more subcommands land with the renderer)."""

from __future__ import annotations

import argparse
import json
import sys

from synth.params import PARAM_TABLE_VERSION, table_as_dicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth", description="Serum-lite synthesizer tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_params = sub.add_parser("params", help="print the 24-parameter table")
    p_params.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.command == "params":
        rows = table_as_dicts()
        if args.json:
            json.dump({"version": PARAM_TABLE_VERSION, "parameters": rows}, sys.stdout, indent=1)
            sys.stdout.write("\n")
        else:
            print(f"Serum-lite parameters (table version {PARAM_TABLE_VERSION})")
            for r in rows:
                snap = " snapped" if r["snap"] else ""
                print(
                    f"{r['index']:>2} {r['name']:<18} {r['module']:<7} {r['low']:g}..{r['high']:g} "
                    f"{r['unit']} ({r['curve']}{snap})"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
