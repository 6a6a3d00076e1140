"""The main job on the embedded default (grows with the project; see README)."""

from __future__ import annotations

import subprocess
import sys


def main() -> int:
    return subprocess.call([sys.executable, "-m", "synth", "params"])


if __name__ == "__main__":
    raise SystemExit(main())
