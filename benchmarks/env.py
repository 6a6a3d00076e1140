"""`python benchmarks/env.py --json`: vectorized preset-matching env steps/s vs a loop of single envs.

Input: the number of environments (default 64), a curriculum stage (default 5: all parameters),
a time budget per side. Output: one JSON object: `vector_env_steps_per_s` (one
`PresetMatchVectorEnv` of N environments: one batched render + analysis per step, full
observation), `single_env_loop_steps_per_s` (N `PresetMatchEnv`s stepped one after another in the
same run), their `ratio`, the render and hearing milliseconds per batched step (medians; wall and
process CPU), the observation size,
torch threads, the vector env's worker threads (`--worker-threads`, default min(2, cores)), and the
target (>= 2,000 env-steps/s on 2 cores). Random actions; episodes reset
themselves (auto-reset), as in training. Process CPU time per side is reported too (`*_per_cpu_s`,
`cpu_ratio`): other people's load distorts it less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.match.env import make_env
from agents.match.probe import hear_and_loss
from agents.match.vector import PresetMatchVectorEnv
from settings import SettingsError, load_settings, with_overrides
from synth.params import snap_vector

TARGET_STEPS_PER_S = 2000


def vector_rate(env: PresetMatchVectorEnv, budget_s: float) -> tuple[float, float]:
    """(env-steps per wall second, per process CPU second)."""
    env.reset(seed=0)
    env.step(env.action_space.sample())  # warm-up
    steps, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < budget_s:
        env.step(env.action_space.sample())
        steps += env.num_envs
    return steps / (time.perf_counter() - start), steps / (time.process_time() - cpu)


def single_loop_rate(envs: list, budget_s: float) -> tuple[float, float]:
    for i, env in enumerate(envs):
        env.reset(seed=i)
        env.action_space.seed(i)
    steps, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < budget_s:
        for env in envs:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
            steps += 1
    return steps / (time.perf_counter() - start), steps / (time.process_time() - cpu)


def stage_ms(env: PresetMatchVectorEnv, repeats: int = 7) -> dict[str, float]:
    """Median wall and process-CPU milliseconds per batched render and per batched hearing (features +
    loss) of N patches, as in a step (CPU: all worker threads together)."""
    engine = env.engine
    x = torch.from_numpy(snap_vector(engine.x))
    with torch.no_grad():
        audio = engine.renderer(x)
        stages = {
            "render": lambda: engine.renderer(x),
            "hearing": lambda: hear_and_loss(engine.hearing, audio, engine.targets, threads=engine.worker_threads),
        }
        out = {}
        for name, run in stages.items():
            walls, cpus = [], []
            for _ in range(repeats):
                wall, cpu = time.perf_counter(), time.process_time()
                run()
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            out[f"{name}_ms_per_batch"] = round(float(np.median(walls)) * 1000, 2)
            out[f"{name}_cpu_ms_per_batch"] = round(float(np.median(cpus)) * 1000, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/env.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-envs", type=int, default=64, help="environments (default 64)")
    parser.add_argument("--stage", type=int, default=5, help="curriculum stage (default 5: all parameters)")
    parser.add_argument("--seconds", type=float, default=10.0, help="time budget per side (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0: torch's default)")
    parser.add_argument(
        "--worker-threads", type=int, default=None, help="vector env worker threads (default min(2, cores))"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--settings", type=Path, default=None, help="settings YAML (default: the repository's)")
    args = parser.parse_args(argv)
    if args.worker_threads is not None and args.worker_threads < 1:
        print(f"error: --worker-threads must be >= 1, got {args.worker_threads}", file=sys.stderr)
        return 2
    if args.n_envs <= 0 or args.seconds <= 0:
        print(f"error: --n-envs and --seconds must be > 0, got {args.n_envs}, {args.seconds}", file=sys.stderr)
        return 2
    try:
        settings = with_overrides(load_settings(args.settings), {"match.stage": args.stage})
    except (SettingsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    with tqdm(total=3, desc="benchmark env", disable=args.json) as bar:
        vec = PresetMatchVectorEnv(args.n_envs, settings, worker_threads=args.worker_threads)
        vec_per_s, vec_per_cpu_s = vector_rate(vec, args.seconds)
        stages = stage_ms(vec)
        bar.update(1)
        singles = [make_env(settings) for _ in range(args.n_envs)]
        bar.update(1)
        single_per_s, single_per_cpu_s = single_loop_rate(singles, args.seconds)
        bar.update(1)
    result = {
        "vector_env_steps_per_s": round(vec_per_s, 1),
        "single_env_loop_steps_per_s": round(single_per_s, 1),
        "ratio": round(vec_per_s / single_per_s, 2),
        "vector_env_steps_per_cpu_s": round(vec_per_cpu_s, 1),
        "single_env_loop_steps_per_cpu_s": round(single_per_cpu_s, 1),
        "cpu_ratio": round(vec_per_cpu_s / single_per_cpu_s, 2),
        "n_envs": args.n_envs,
        "stage": args.stage,
        "observation_size": int(vec.single_observation_space.shape[0]),
        **stages,
        "torch_threads": torch.get_num_threads(),
        "worker_threads": vec.engine.worker_threads,
        "cores": len(os.sched_getaffinity(0)),
        "target_steps_per_s": TARGET_STEPS_PER_S,
        "meets_target": bool(vec_per_s >= TARGET_STEPS_PER_S),
        "seconds_per_side": args.seconds,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0 if np.isfinite(vec_per_s) else 1


if __name__ == "__main__":
    sys.exit(main())
