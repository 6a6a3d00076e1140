"""`python benchmarks/xrun_reference.py --json`: how often this host's JACK dummy server makes a
client that does nothing miss a cycle, with and without a thread holding the GIL.

What `benchmarks/live.py`'s `xruns` is measured against: the reference client of
`benchmarks.live_realtime` (the live server's two streams, 48 kHz, 512 frames, empty callbacks) under
the same load (another process spinning on one core), `--rounds` times `--seconds` alone and
`--seconds` with a thread that holds the GIL ~150 µs of every 10.5 ms (the live worker's pattern:
Python between its kernels; the reference's Python callbacks need the GIL, as the server's did before
they were compiled), alternating. Prints one JSON
object: `xruns_alone` and `xruns_gil` (a list per round), their sums, `seconds`, `rounds`, `load`;
or `xruns_skipped` with the reason (no jackd). If the empty client alone misses cycles at the rate
the live server does, the misses are the host's, not the live loop's (`docs/benchmarks.md`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.live_realtime import reference_xruns, start_jackd


def measure(rounds: int, seconds: float) -> dict[str, Any]:
    started = start_jackd()
    if isinstance(started, str):
        return {"xruns_alone": None, "xruns_gil": None, "xruns_skipped": started}
    jackd, env = started
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    alone: list[int | None] = []
    gil: list[int | None] = []
    try:
        for _ in range(rounds):
            alone.append(reference_xruns(env, seconds))
            gil.append(reference_xruns(env, seconds, hold_gil=True))
    finally:
        burner.kill()
        jackd.terminate()
        jackd.wait(10)
    return {
        "xruns_alone": alone,
        "xruns_gil": gil,
        "xruns_alone_total": sum(x for x in alone if x is not None),
        "xruns_gil_total": sum(x for x in gil if x is not None),
        "failed_runs": sum(x is None for x in alone + gil),
        "rounds": rounds,
        "seconds": seconds,
        "load": "another process spinning on one core",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/xrun_reference.py", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="pairs of runs (alone, GIL-busy)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each run")
    parser.add_argument("--json", action="store_true", help="print one JSON object (default: a summary line)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0:
        print("error: --rounds and --seconds must be positive", file=sys.stderr)
        return 2
    result = measure(args.rounds, args.seconds)
    if args.json:
        print(json.dumps(result))
    elif result.get("xruns_skipped"):
        print(f"skipped: {result['xruns_skipped']}")
    else:
        print(f"xruns alone {result['xruns_alone']}, with a GIL-busy thread {result['xruns_gil']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
