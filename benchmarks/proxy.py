"""`python benchmarks/proxy.py --json`: neural proxy predictions/s vs render + analyze, same run.

Input: a proxy folder (default `models/proxy`), a batch size, a time budget per side.
Output: one JSON object: `proxy_predictions_per_s` (`Proxy.predict` under `torch.inference_mode`,
the no-grad path: numba input encoding and chroma head, addmm + in-place SiLU),
`render_analyze_per_s` (the imitation environment's own render path,
`agents.imitate.sound.RenderDescriber`: render_batch in blocks of 256, describe_batch, mean of the
last 2 frames, on the probe the proxy was trained for, `proxy.yaml` `target`), their `ratio`
(target >= 100); the same for the plain module path with the de-normalization as separate ops
(`proxy_module_predictions_per_s`, `ratio_module`, the path before the fused one) and for
`Proxy.predict_numpy` (`ratio_numpy`); `precision`, what the no-grad path's layers ran in
(`proxy.yaml` `no_grad_precision`, `agents.proxy.bf16`), and when that is bfloat16 the same
folder forced to float32 (`proxy_float32_predictions_per_s`, `ratio_float32`); the batch size,
threads, and the proxy's held-out metrics from proxy.yaml. Rates are per CPU second of this
process (`time.process_time`, every thread counted), so other work on a shared machine slows
neither side; torch and numpy's BLAS get
`--threads` threads each. Both sides run on the same random parameter batches in one process, in
`--rounds` interleaved turns (a slow phase of the shared machine then slows every side alike).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.imitate.sound import RenderDescriber
from agents.proxy import Proxy, ProxyError
from features.config import FeatureSettings
from settings import SettingsError, load_settings


def timed_calls(fn, budget_s: float) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """Calls of `fn()` and the CPU seconds they took, over at least `budget_s` CPU seconds."""
    calls, start = 0, time.process_time()
    while True:
        fn()
        calls += 1
        elapsed = time.process_time() - start
        if elapsed >= budget_s:
            return calls, elapsed


def rates(fns: dict[str, object], batch: int, budget_s: float, rounds: int) -> dict[str, float]:
    """Items per CPU second of each `fn()` (one call = `batch` items), `budget_s` CPU seconds each,
    taken in `rounds` interleaved turns so that a slow phase of a shared machine hits every side."""
    totals = {name: [0, 0.0] for name in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(rounds):
        for name, fn in fns.items():
            calls, elapsed = timed_calls(fn, budget_s / rounds)
            totals[name][0] += calls
            totals[name][1] += elapsed
    return {name: calls * batch / elapsed for name, (calls, elapsed) in totals.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/proxy.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/proxy"), help="proxy folder")
    parser.add_argument("--batch", type=int, default=256, help="parameter vectors per call")
    parser.add_argument("--seconds", type=float, default=5.0, help="time budget per side")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved turns the budget is split into")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: comparable on a shared machine)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--settings", type=Path, default=None, help="settings YAML (default: environment_settings.yaml)"
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.settings)
        proxy = Proxy.load(args.model)
        exact = Proxy.load(args.model)
        exact.set_precision("float32")
        if args.batch < 1 or args.seconds <= 0 or args.threads < 1 or args.rounds < 1:
            raise ValueError("--batch, --seconds, --rounds and --threads must be positive")
    except (SettingsError, ProxyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    params = torch.rand(args.batch, 24, generator=gen)
    notes = torch.randint(36, 85, (args.batch,), generator=gen).float()
    target = proxy.meta.get("target", {})
    features = FeatureSettings(**target["features"]) if "features" in target else settings.features
    sr = int(target.get("sample_rate_hz", features.sample_rate_hz))
    probe_s = float(target.get("probe_s", settings.imitate.window_s))
    last = int(target.get("summary_frames", 2))
    if sr != features.sample_rate_hz or last != 2:
        print("error: the proxy's target is not the imitation environment's snapshot", file=sys.stderr)
        return 2
    describer = RenderDescriber(settings.synth, features, window_s=probe_s)
    params_np, notes_np = params.numpy(), notes.numpy()
    gates = np.ones(args.batch, dtype=bool)

    def real() -> object:
        return describer.describe(params_np, notes_np, gates)

    def fast() -> torch.Tensor:
        with torch.inference_mode():
            return proxy.predict(params, notes)

    def fast_float32() -> torch.Tensor:
        with torch.inference_mode():
            return exact.predict(params, notes)

    def module() -> torch.Tensor:
        with torch.no_grad():
            return proxy.predict_normalized(params, notes) * proxy.out_std + proxy.out_mean

    def fast_numpy() -> object:
        return proxy.predict_numpy(params_np, notes_np)

    with threadpool_limits(limits=args.threads):
        sides = {"real": real, "fast": fast, "module": module, "numpy": fast_numpy}
        if proxy.precision != "float32":
            sides["float32"] = fast_float32
        measured = rates(sides, args.batch, args.seconds, args.rounds)
    real_per_s, proxy_per_s = measured["real"], measured["fast"]
    module_per_s, numpy_per_s = measured["module"], measured["numpy"]
    result = {
        "proxy_predictions_per_s": round(proxy_per_s, 1),
        "render_analyze_per_s": round(real_per_s, 1),
        "ratio": round(proxy_per_s / real_per_s, 1),
        "proxy_module_predictions_per_s": round(module_per_s, 1),
        "ratio_module": round(module_per_s / real_per_s, 1),
        "proxy_numpy_predictions_per_s": round(numpy_per_s, 1),
        "ratio_numpy": round(numpy_per_s / real_per_s, 1),
        "precision": proxy.precision,
        **(
            {
                "proxy_float32_predictions_per_s": round(measured["float32"], 1),
                "ratio_float32": round(measured["float32"] / real_per_s, 1),
            }
            if "float32" in measured
            else {}
        ),
        "timer": "process_time",
        "target_ratio": 100,
        "batch": args.batch,
        "threads": args.threads,
        "rounds": args.rounds,
        "probe_s": probe_s,
        "summary_frames": last,
        "sample_rate_hz": sr,
        "model": str(args.model),
        "model_metrics": proxy.meta.get("metrics", {}),
        "training_rows": proxy.meta.get("training", {}).get("training_rows"),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"proxy {proxy_per_s:,.0f}/s (module {module_per_s:,.0f}/s, numpy {numpy_per_s:,.0f}/s) vs "
            f"render+analyze {real_per_s:,.0f}/s per CPU second: {result['ratio']}x "
            f"({result['ratio_module']}x, {result['ratio_numpy']}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
