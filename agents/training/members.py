"""`train.py --members K`: train K members side by side, one process each, then merge them.

Input: the `train.py` command line (minus `--members`), the output directory, K and the base seed.
Output: `<out>/members/m<k>/` (each a complete model directory with its checkpoints, written by the
member's own `train.py` process with `--seed seed+k`; its log in `<out>/members/m<k>.log`) and the
merged model in `<out>/` (`agents.training.ensemble.write_ensemble`). Returns an exit code.

The members are separate processes, so they run truly in parallel (one torch thread each: K = the
number of cores uses the machine fully). `--resume` resumes every member from its own newest
checkpoint. If a member fails, the others still finish and keep their directories; the error names
the member and the last line of its log, and `--resume` picks the run up again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from agents.policy import ModelError
from agents.training.ensemble import write_ensemble

TRAIN_PY = Path(__file__).resolve().parents[2] / "train.py"
# how a member process starts: `[*LAUNCH, *member arguments]` (tests put a sound double in front)
LAUNCH: tuple[str, ...] = (sys.executable, str(TRAIN_PY))
# flags the parent sets per member (their values are dropped from the command line it forwards)
VALUED_FLAGS = ("--members", "--out", "--seed")
BARE_FLAGS = ("--no-progress",)


def member_argv(argv: Sequence[str], out_dir: Path, member: int, seed: int) -> list[str]:
    """The member's `train.py` arguments: the parent's, with its own --out and --seed, no progress bar."""
    forwarded: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in VALUED_FLAGS:
            skip = "=" not in arg
            continue
        if name in BARE_FLAGS:
            continue
        forwarded.append(arg)
    member_dir = out_dir / "members" / f"m{member}"
    return [*forwarded, "--out", str(member_dir), "--seed", str(seed + member), "--no-progress"]


def train_members(argv: Sequence[str], out_dir: Path, n_members: int, seed: int) -> int:
    """Run the members at once, wait for all of them, merge; 0 on success, 1 if a member failed."""
    members_dir = out_dir / "members"
    members_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    logs = [members_dir / f"m{k}.log" for k in range(n_members)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    previous = _forward_signals(procs)
    try:
        for k in range(n_members):
            cmd = [*LAUNCH, *member_argv(argv, out_dir, k, seed)]
            try:
                with logs[k].open("ab") as log:
                    procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
            except OSError as exc:  # the members already started still finish (and keep their work)
                print(f"error: cannot start member {k}: {exc}", file=sys.stderr)
                break
            print(f"member {k}: seed {seed + k}, log {logs[k]}", file=sys.stderr)
        codes = [p.wait() for p in procs] + [-1] * (n_members - len(procs))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    wall_s = time.monotonic() - started
    failed = [k for k, code in enumerate(codes) if code != 0]
    if failed:
        for k in failed:
            print(f"error: member {k} exited with {codes[k]}: {_last_line(logs[k])} (log {logs[k]})", file=sys.stderr)
        print(f"error: {len(failed)} of {n_members} members failed; the others are kept, --resume continues",
              file=sys.stderr)  # fmt: skip
        return 1
    try:
        write_ensemble(out_dir, [members_dir / f"m{k}" for k in range(n_members)], wall_s=wall_s)
    except (ModelError, ValueError, OSError) as exc:
        print(f"error: merging the members: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out_dir} (ensemble of {n_members} members, seeds {seed}..{seed + n_members - 1}, "
          f"{wall_s / 60:.1f} min)")  # fmt: skip
    return 0


def _forward_signals(procs: list[subprocess.Popen[bytes]]) -> dict[int, object]:
    """SIGINT / SIGTERM to the parent reach every member (each saves and exits its own way)."""

    def forward(signum: int, frame: FrameType | None) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous: dict[int, object] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, forward)
    return previous


def _last_line(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1].strip() if lines else "(empty log)"
