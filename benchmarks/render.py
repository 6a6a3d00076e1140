"""`python benchmarks/render.py --json`: Serum-lite batched render vs torchsynth's `Voice`, same run.

Input: batch size (128), rate (synth.sample_rate_hz, 16 kHz), length (synth.probe_s, 0.5 s),
threads (2), repeats. Output: one JSON object: `serumlite_sounds_per_s` (the `render_batch` default
path on the unison-7 + filter mix: random patches, unison forced to 7 voices, cutoff 200 Hz..3 kHz),
`torchsynth_voice_sounds_per_s` (`torchsynth.synth.Voice`, SynthConfig(batch_size, rate, length,
reproducible=False)), their `ratio`, the same for fully random patches (`*_realistic_*`), the
differentiable torch path, and the streaming voice: `stream_block_us` p50/p99/max per 512-frame
block at 48 kHz for a 7-voice unison patch. Both sides run interleaved on the same threads (torch's
setting, which the kernel follows too) and the medians are compared, because the machine is shared
and noisy; the CPU seconds of each side (`cpu_ratio`) are reported too (less distorted by load).
Each timed call starts `--settle-s` (50 ms) after the previous one ended: torch's OpenMP workers keep
spinning for a while after `Voice`'s last parallel region, and a render started at once shares the
cores with them (measured: 27 ms instead of 21 per batch of 128 with 2 threads).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from settings import SettingsError, load_settings, with_overrides
from synth.params import N_PARAMS, PARAM_INDEX, default_vector
from synth.render import render_batch
from synth.stream import StreamingVoice

TARGET_RATIO = 2.0
TARGET_SOUNDS_PER_S = 5000
TARGET_STREAM_P99_US = 1000.0


def unison7_filter_mix(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random patches with 7 unison voices and the filter active (cutoff 200 Hz..3 kHz), notes 36..84."""
    gen = torch.Generator().manual_seed(seed)
    params = torch.rand(batch, N_PARAMS, generator=gen)
    params[:, PARAM_INDEX["unison_voices"]] = 1.0
    params[:, PARAM_INDEX["filter_cutoff"]] = 0.28 + 0.4 * torch.rand(batch, generator=gen)
    notes = torch.randint(36, 85, (batch,), generator=gen).float()
    return params, notes


def realistic_mix(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniformly random patches (unison 1..7), notes 36..84."""
    gen = torch.Generator().manual_seed(seed + 1)
    return torch.rand(batch, N_PARAMS, generator=gen), torch.randint(36, 85, (batch,), generator=gen).float()


def median_seconds(
    fns: list[Callable[[], object]], repeats: int, desc: str, quiet: bool, settle_s: float = 0.0
) -> list[tuple[float, float]]:
    """Run the callables interleaved `repeats` times (after one warm-up each), each `settle_s` after the
    previous call ended (so that no thread pool is still spinning from it).

    Returns (median wall seconds, median CPU seconds of this process, all threads) for each."""
    for fn in fns:
        fn()
    times: list[list[tuple[float, float]]] = [[] for _ in fns]
    for _ in tqdm(range(repeats), desc=desc, disable=quiet, file=sys.stderr):
        for fn, bucket in zip(fns, times, strict=True):
            time.sleep(settle_s)
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            bucket.append((time.perf_counter() - wall, time.process_time() - cpu))
    return [(float(np.median([w for w, _ in t])), float(np.median([c for _, c in t]))) for t in times]


def stream_block_us(sample_rate_hz: int, block_size: int, n_blocks: int) -> dict[str, float]:
    """Per-block wall time of a 7-voice unison patch (two oscillators, noise, moving filter, LFO)."""
    x = default_vector()
    values = dict(unison_voices=1.0, unison_detune=0.4, osc2_level=0.5, noise_level=0.1, filter_resonance=0.5)
    for name, value in dict(values, filter_env_amount=0.7, lfo_amount=0.3, lfo_target=0.5).items():
        x[PARAM_INDEX[name]] = value
    voice = StreamingVoice(sample_rate_hz, block_size)
    voice.set_params(x)
    voice.note_on(48)
    block = np.empty(block_size, dtype=np.float32)
    for _ in range(50):
        voice.process(block)
    times = np.empty(n_blocks)
    for i in range(n_blocks):
        if i % 100 == 0:  # a parameter change now and then, as in live use (smoothed)
            x[PARAM_INDEX["filter_cutoff"]] = 0.4 + 0.3 * ((i // 100) % 2)
            voice.set_params(x)
        start = time.perf_counter_ns()
        voice.process(block)
        times[i] = (time.perf_counter_ns() - start) / 1000.0
    p50, p99, worst = np.percentile(times, [50, 99, 100])
    return {"p50": round(float(p50), 1), "p99": round(float(p99), 1), "max": round(float(worst), 1)}


def run(args: argparse.Namespace, sample_rate_hz: int, duration_s: float) -> dict[str, object]:
    torch.set_num_threads(args.threads)  # Serum-lite's kernel splits its batch over torch's thread count too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchsynth's deprecation warnings
        from torchsynth.config import SynthConfig
        from torchsynth.synth import Voice

        voice = Voice(SynthConfig(args.batch, sample_rate_hz, duration_s, reproducible=False))
    params, notes = unison7_filter_mix(args.batch, args.seed)
    r_params, r_notes = realistic_mix(args.batch, args.seed)

    def torchsynth_voice() -> object:
        with torch.no_grad():
            return voice()

    def serumlite(p: torch.Tensor, n: torch.Tensor, backend: str = "auto") -> Callable[[], object]:
        return lambda: render_batch(p, n, sample_rate_hz=sample_rate_hz, duration_s=duration_s, backend=backend)

    quiet = args.json
    reps = args.repeats
    (t_serum, c_serum), (t_voice, c_voice) = median_seconds(
        [serumlite(params, notes), torchsynth_voice], reps, "unison-7 mix", quiet, args.settle_s
    )
    (t_real, c_real), (t_voice2, c_voice2) = median_seconds(
        [serumlite(r_params, r_notes), torchsynth_voice], reps, "random mix", quiet, args.settle_s
    )
    ((t_torch, _),) = median_seconds(
        [serumlite(params, notes, "torch")], max(1, reps // 4), "torch path", quiet, args.settle_s
    )
    stream = stream_block_us(48000, 512, args.stream_blocks)
    per_s = args.batch / t_serum
    return {
        "serumlite_sounds_per_s": round(per_s, 1),
        "torchsynth_voice_sounds_per_s": round(args.batch / t_voice, 1),
        "ratio": round(t_voice / t_serum, 2),
        "cpu_ratio": round(c_voice / c_serum, 2),
        "serumlite_cpu_ms_per_sound": round(c_serum / args.batch * 1000, 3),
        "torchsynth_voice_cpu_ms_per_sound": round(c_voice / args.batch * 1000, 3),
        "serumlite_realistic_sounds_per_s": round(args.batch / t_real, 1),
        "realistic_ratio": round(t_voice2 / t_real, 2),
        "realistic_cpu_ratio": round(c_voice2 / c_real, 2),
        "serumlite_torch_path_sounds_per_s": round(args.batch / t_torch, 1),
        "stream_block_us": stream,
        "stream_sample_rate_hz": 48000,
        "stream_block_size": 512,
        "stream_block_budget_us": round(512 / 48000 * 1e6, 1),
        "batch": args.batch,
        "sample_rate_hz": sample_rate_hz,
        "duration_s": duration_s,
        "threads": args.threads,
        "repeats": args.repeats,
        "settle_s": args.settle_s,
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "targets": {"ratio": TARGET_RATIO, "sounds_per_s": TARGET_SOUNDS_PER_S, "stream_p99_us": TARGET_STREAM_P99_US},
        "meets_targets": bool(
            t_voice / t_serum >= TARGET_RATIO and per_s >= TARGET_SOUNDS_PER_S and stream["p99"] <= TARGET_STREAM_P99_US
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/render.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128, help="patches per render (default 128)")
    parser.add_argument("--sample-rate-hz", type=int, default=None, help="render rate (default synth.sample_rate_hz)")
    parser.add_argument("--duration-s", type=float, default=None, help="render length (default synth.probe_s)")
    parser.add_argument("--threads", type=int, default=2, help="threads for both sides (default 2)")
    parser.add_argument("--repeats", type=int, default=12, help="timed renders per side (default 12)")
    parser.add_argument("--stream-blocks", type=int, default=3000, help="streaming blocks timed (default 3000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the patch mixes (default 0)")
    parser.add_argument("--settle-s", type=float, default=0.05, help="pause before each timed call (default 0.05)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--settings", type=Path, default=None, help="settings YAML (default: the repository's)")
    args = parser.parse_args(argv)
    if min(args.batch, args.threads, args.repeats, args.stream_blocks) <= 0:
        print("error: --batch, --threads, --repeats and --stream-blocks must be > 0", file=sys.stderr)
        return 2
    if args.settle_s < 0:
        print(f"error: --settle-s must be >= 0, got {args.settle_s}", file=sys.stderr)
        return 2
    try:
        overrides = {"synth.sample_rate_hz": args.sample_rate_hz, "synth.probe_s": args.duration_s}
        settings = with_overrides(load_settings(args.settings), overrides)
    except (SettingsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = run(args, settings.synth.sample_rate_hz, settings.synth.probe_s)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
