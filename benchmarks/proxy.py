"""`python benchmarks/proxy.py --json`: neural proxy predictions/s vs render + analyze, same run.

Input: a proxy folder (default `models/proxy`), a batch size, a time budget per side.
Output: one JSON object: `proxy_predictions_per_s`, `render_analyze_per_s` (synth.render.render_batch
then features.batch.describe_batch and the frame mean, on the probe the proxy was trained for,
`proxy.yaml` `target`: exactly what the proxy stands in for), their `ratio` (target >= 100), the
same for `Proxy.predict_numpy` (`ratio_numpy`, no autograd), the batch size, threads, and the
proxy's held-out metrics from proxy.yaml. Both sides run on the same random parameter batches,
one after the other in one process, so the shared machine's noise hits both.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.proxy import Proxy, ProxyError
from features.batch import describe_batch
from settings import SettingsError, load_settings
from synth.render import render_batch


def rate(fn, batch: int, budget_s: float) -> float:  # type: ignore[no-untyped-def]
    """Items per second of `fn()` (one call = `batch` items) over at least `budget_s` seconds."""
    fn()  # warm-up
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s:
            return calls * batch / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/proxy.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/proxy"), help="proxy folder")
    parser.add_argument("--batch", type=int, default=256, help="parameter vectors per call")
    parser.add_argument("--seconds", type=float, default=5.0, help="time budget per side")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: comparable on a shared machine)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--settings", type=Path, default=None, help="settings YAML (default: environment_settings.yaml)"
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.settings)
        proxy = Proxy.load(args.model)
        if args.batch < 1 or args.seconds <= 0 or args.threads < 1:
            raise ValueError("--batch, --seconds and --threads must be positive")
    except (SettingsError, ProxyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    params = torch.rand(args.batch, 24, generator=gen)
    notes = torch.randint(36, 85, (args.batch,), generator=gen).float()
    target = proxy.meta.get("target", {})
    sr = int(target.get("sample_rate_hz", settings.synth.sample_rate_hz))
    probe_s = float(target.get("probe_s", settings.synth.probe_s))
    last = int(target.get("summary_frames", 0))  # 0: mean over every frame

    def real() -> torch.Tensor:
        audio = render_batch(params, notes, sample_rate_hz=sr, duration_s=probe_s, seed=0)
        frames = describe_batch(audio, sr, settings.features)
        return frames[:, -last:].mean(dim=1) if last else frames.mean(dim=1)

    def fast() -> torch.Tensor:
        return proxy.predict(params, notes)

    params_np, notes_np = params.numpy(), notes.numpy()

    def fast_numpy() -> object:
        return proxy.predict_numpy(params_np, notes_np)

    with torch.no_grad():
        real_per_s = rate(real, args.batch, args.seconds)
        proxy_per_s = rate(fast, args.batch, args.seconds)
        numpy_per_s = rate(fast_numpy, args.batch, args.seconds)
    result = {
        "proxy_predictions_per_s": round(proxy_per_s, 1),
        "render_analyze_per_s": round(real_per_s, 1),
        "ratio": round(proxy_per_s / real_per_s, 1),
        "proxy_numpy_predictions_per_s": round(numpy_per_s, 1),
        "ratio_numpy": round(numpy_per_s / real_per_s, 1),
        "target_ratio": 100,
        "batch": args.batch,
        "threads": args.threads,
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
            f"proxy {proxy_per_s:,.0f}/s (numpy {numpy_per_s:,.0f}/s) vs render+analyze {real_per_s:,.0f}/s: "
            f"{result['ratio']}x ({result['ratio_numpy']}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
