"""`python -m agents.evaluate --task imitate|match ...`: dispatch to the task's evaluation.

Input: `--task` (default imitate), `--settings FILE`, `--json`, and the task's own flags (from its
module's `add_arguments(parser)`: `agents.evaluate.imitate` or `agents.evaluate.match`).
Output: whatever the task's `run(args, settings) -> int` prints; its exit code (2 on bad input).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from settings import SettingsError, load_settings

TASKS = {"imitate": "agents.evaluate.imitate", "match": "agents.evaluate.match"}


def build_parser(task: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agents.evaluate",
        description="Evaluate a trained agent and its baselines (--task imitate: listening agent on audio "
        "files; --task match: preset matching on held-out presets). Use --task T --help for T's flags.",
    )
    parser.add_argument("--task", choices=tuple(TASKS), default="imitate")
    parser.add_argument("--settings", default=None, help="settings YAML (default: environment_settings.yaml)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    importlib.import_module(TASKS[task]).add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", choices=tuple(TASKS), default="imitate")
    known, _ = pre.parse_known_args(argv)
    args = build_parser(known.task).parse_args(argv)
    try:
        settings = load_settings(args.settings)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return int(importlib.import_module(TASKS[args.task]).run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
