"""Train an agent: `python train.py --corpus corpus/demo` (listening agent) or `--task match`.

Input: command-line flags (they override `environment_settings.yaml` or `--settings FILE`).
Output: a model directory (`--out models/<name>`) written by the task's trainer:
`agents.imitate.train.run(settings, args)` or `agents.match.train.run(settings, args)`.
Exit code 0 on success, 2 with a one-line error on bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from settings import SettingsError, load_settings, with_overrides

ALGORITHMS = ("sac", "ppo", "td3", "a2c", "dqn")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train the listening agent (task imitate, default) or the preset-matching agent (task match).",
        allow_abbrev=False,  # `--members` forwards the command line to its members flag by flag
    )
    p.add_argument("--task", choices=("imitate", "match"), default="imitate")
    p.add_argument("--settings", default=None, help="settings YAML (default: environment_settings.yaml)")
    p.add_argument("--corpus", default=None, help="analysed corpus folder (imitate; default: corpus.default)")
    p.add_argument("--out", default=None, help="model directory to write, e.g. models/mine")
    p.add_argument("--algorithm", choices=ALGORITHMS, default=None, help="RL algorithm (training.algorithm)")
    p.add_argument("--steps", type=int, default=None, help="total environment steps (training.total_steps)")
    p.add_argument("--seed", type=int, default=None, help="random seed (training.seed)")
    p.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints")
    p.add_argument("--eval-every", type=int, default=None, help="steps between evaluations")
    p.add_argument("--eval-episodes", type=int, default=None)
    p.add_argument("--learning-starts", type=int, default=None, help="off-policy warm-up steps")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--net-arch", type=int, nargs="+", default=None, help="hidden layer sizes, e.g. 64 64")
    p.add_argument("--max-minutes", type=float, default=None, help="stop training after this wall time (and export)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    p.add_argument(
        "--members",
        type=int,
        default=1,
        help="train K policies side by side (seeds seed..seed+K-1, one process each) and ship their average",
    )
    g = p.add_argument_group("imitate")
    g.add_argument("--action", choices=("continuous", "discrete"), default=None, help="imitate.action")
    g.add_argument("--mode", choices=("corpus", "static_random", "dynamic_random", "mixed"), default=None)
    g.add_argument("--descriptor-source", choices=("render", "proxy", "stream"), default=None)
    g.add_argument("--reward", choices=("cubic", "linear", "prize", "squared"), default=None)
    g.add_argument("--episode-steps", type=int, default=None)
    g.add_argument("--delta-max", type=float, default=None, help="largest parameter change per tick")
    g.add_argument("--lambda-smooth", type=float, default=None, help="weight of the smoothness penalty")
    try:
        from agents.match import train as match_train

        add = getattr(match_train, "add_arguments", None)
        if add is not None:
            add(p.add_argument_group("match"))
    except ImportError:
        pass
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    for flag in (
        "members",
        "steps",
        "checkpoint_every",
        "eval_every",
        "eval_episodes",
        "episode_steps",
        "batch_size",
        "max_minutes",
        "delta_max",
    ):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            print(f"error: --{flag.replace('_', '-')} must be > 0, got {value}", file=sys.stderr)
            return 2
    try:
        settings = load_settings(args.settings)
        settings = with_overrides(
            settings,
            {
                "training.algorithm": args.algorithm,
                "training.total_steps": args.steps,
                "training.seed": args.seed,
                "training.checkpoint_every": args.checkpoint_every,
                "training.eval_every": args.eval_every,
                "training.eval_episodes": args.eval_episodes,
                "training.learning_starts": args.learning_starts,
                "training.batch_size": args.batch_size,
                "training.net_arch": tuple(args.net_arch) if args.net_arch else None,
                "imitate.action": args.action,
                "imitate.mode": args.mode,
                "imitate.descriptor_source": args.descriptor_source,
                "imitate.reward": args.reward,
                "imitate.episode_steps": args.episode_steps,
                "imitate.delta_max": args.delta_max,
                "imitate.lambda_smooth": args.lambda_smooth,
                "training.max_wall_s": args.max_minutes * 60.0 if args.max_minutes else None,
            },
        )
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.task == "match":
        if args.members > 1:
            print("error: --members is for the listening agent (--task imitate)", file=sys.stderr)
            return 2
        from agents.match import train as match_train

        return int(match_train.run(settings, args))
    if settings.training.algorithm == "dqn" and settings.imitate.action != "discrete":
        settings = with_overrides(settings, {"imitate.action": "discrete"})
    if settings.training.algorithm in ("sac", "td3") and settings.imitate.action != "continuous":
        print(f"error: {settings.training.algorithm} needs --action continuous", file=sys.stderr)
        return 2
    from agents.imitate import train as imitate_train

    if args.members > 1:
        from pathlib import Path

        from agents.training.members import train_members

        corpus_dir = Path(args.corpus if args.corpus else settings.corpus.default)
        out = Path(args.out) if args.out else imitate_train.default_out(settings, corpus_dir)
        return train_members(argv, out, args.members, settings.training.seed)
    return int(imitate_train.run(settings, args))


if __name__ == "__main__":
    sys.exit(main())
