"""`python benchmarks/live.py --json`: the live loop's per-block cost, audio-in -> OSC-out latency, xruns.

Input: a model directory (default `server.model`, i.e. models/default), an audio file (default: the
first file of the demo corpus), durations. Output: one JSON object:
- `block_us` {p50, p99, max} at 48 kHz / 512 frames (and `by_block_size` for 512 and 256): the
  worker's processing per block (descriptors of input and self voice, observation, policy,
  smoothing, OSC send), measured by running the real `LiveServer` over the file with `--fast`;
  per block size also `tick_block_us` (only the blocks that ran the policy: the latency-critical
  ones, and the tail of `block_us`) and `block_cpu_us` (the worker thread's CPU time per block:
  no preemption, so it moves less with other load on the machine);
  `block_budget_ratio` = p99 / block duration, and `reference_fft_us` + `ratio_to_fft` (p50 over
  the p50 of one numpy rfft of 3,072 points, same run: a machine-speed reference, kept at the size
  of the former 48 kHz analysis window so that figures compare across sessions);
- `components_p50_us`: each stage alone (extractor on one tick of audio, a voice block, the
  policy, an OSC send), to see where the block time goes;
- `latency_ms` {p50, p99, max}: from a block's arrival (the input callback) to the receipt of its
  `/serumlite/params` by a loopback listener in another process (the file streamed at real-time
  pace, one control tick per block), plus the block's own duration; `latency_after_block_ms`
  excludes that duration (the part we control); `latency_parts_ms` splits it into `wake` (arrival
  -> the worker picks the block up), `process_to_send` (-> the OSC message leaves) and `delivery`
  (-> the listener has it). The listener runs in its own process (perf_counter is CLOCK_MONOTONIC,
  one clock for both): in the server's process it would wait for the GIL while the worker finishes
  the block after the send, and that wait was counted as latency;
- `xruns`: from a real-time run through the JACK dummy driver (`live_server.py --input system
  --output both` in a subprocess) while another process spins on a core; `--realtime-s` (60 by
  default); null with `xruns_skipped` when jackd is not available; that run and the other keys it
  adds (`reference_xruns`, `realtime_*`, `load`, the soak's `rss_*`) are in `benchmarks/live_realtime.py`;
- with `--soak-s N`: the same real-time run lasts N s and `rss_growth_mb` (after a 10 s warm-up) is reported.
Targets: p99 <= 500 µs per block, latency <= one block + 1 ms, 0 xruns, RSS growth < 5 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.live_realtime import realtime_run  # noqa: E402
from server.app import LiveServer  # noqa: E402
from server.audio_io import InputSpec  # noqa: E402
from server.callbacks import InputCallback  # noqa: E402
from settings import Settings, SettingsError, load_settings, with_overrides  # noqa: E402

TARGET_P99_US = 500.0
TARGET_XRUNS = 0
TARGET_RSS_MB = 5.0
SR = 48000


def block_timing(settings: Settings, audio: Path, block_size: int) -> dict[str, Any]:
    """Run the real server over `audio` with --fast; the worker's per-block histogram."""
    s = with_overrides(
        settings,
        {
            "audio.sample_rate_hz": SR,
            "audio.block_size": block_size,
            "audio.fast": True,
            "server.output": "osc",
            "osc.listen_port": 0,
            "osc.send_port": 9,
        },
    )
    server = LiveServer(s, InputSpec("file", path=audio))
    server.start()
    server.run()
    stats = server.stop()
    block_us = stats["block_us"]
    return {
        "block_size": block_size,
        "blocks": stats["blocks"],
        "control_ticks": stats["control_ticks"],
        "block_us": {k: block_us[k] for k in ("p50", "p99", "max")},
        "tick_block_us": {k: stats["tick_block_us"][k] for k in ("p50", "p99", "max")},
        "block_cpu_us": {k: stats["block_cpu_us"][k] for k in ("p50", "p99", "max")},
        "block_budget_ratio": round(block_us["p99"] / (1e6 * block_size / SR), 4),
    }


def reference_fft_us(window: int = 3072, repeats: int = 2000) -> float:
    x = np.random.default_rng(0).normal(size=window)
    times = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter_ns()
        np.fft.rfft(x)
        times[i] = time.perf_counter_ns() - t0
    return float(np.percentile(times, 50) / 1000.0)


def component_us(settings: Settings, model: Path, block_size: int = 512, repeats: int = 400) -> dict[str, float]:
    """p50 µs of each stage alone: one extractor call on a tick of audio, one voice block, the policy, an OSC send."""
    from features.names import DESCRIPTOR_NAMES
    from features.stream import StreamingDescriptors
    from server.agent import LiveAgent
    from server.osc_io import OscOut
    from synth.stream import StreamingVoice

    agent = LiveAgent.from_dir(model, DESCRIPTOR_NAMES)
    tick_frames = int(round((agent.tick_s or 0.032) * SR))
    extractor = StreamingDescriptors(settings.features, SR, block_size)
    voice = StreamingVoice(SR, block_size)
    voice.note_on(60.0)
    osc = OscOut(with_overrides(settings, {"osc.send_port": 9}).osc)
    audio = np.random.default_rng(0).normal(0, 0.1, tick_frames).astype(np.float32)
    block = np.zeros(block_size, dtype=np.float32)
    desc = extractor.process(audio)
    params = agent.start_preset.copy()
    stages = {
        "extractor_per_tick": lambda: extractor.process(audio),
        "voice_per_block": lambda: voice.process(block),
        "policy_per_tick": lambda: agent.act(desc, desc, params),
        "osc_params_send": lambda: osc.send_params(params),
    }
    out = {}
    for name, fn in stages.items():
        fn()
        times = np.empty(repeats)
        for i in range(repeats):
            t0 = time.perf_counter_ns()
            fn()
            times[i] = time.perf_counter_ns() - t0
        out[name] = round(float(np.percentile(times, 50)) / 1000.0, 1)
    osc.close()
    return out


class StampingInput(InputCallback):
    """The server's own input callback, plus a perf_counter stamp per block (preallocated)."""

    def __init__(self, inner: InputCallback, max_blocks: int) -> None:
        super().__init__(inner.ring, inner.counters, inner.channel, wake=inner.wake)
        self.stamps_ns = np.zeros(max_blocks, dtype=np.int64)
        self.n = 0

    def __call__(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if self.n < len(self.stamps_ns):
            self.stamps_ns[self.n] = time.perf_counter_ns()
            self.n += 1
        super().__call__(indata, frames, time_info, status)


class Stamps:
    """perf_counter_ns each time `fn` is entered (preallocated; the calls beyond `n` are not stamped)."""

    def __init__(self, fn: Any, n: int) -> None:
        self.fn = fn
        self.ns = np.zeros(n, dtype=np.int64)
        self.count = 0

    def __call__(self, *args: Any) -> Any:
        if self.count < len(self.ns):
            self.ns[self.count] = time.perf_counter_ns()
            self.count += 1
        return self.fn(*args)


# The loopback receiver runs in its own process: in the server's process it would wait for the GIL
# (up to the switch interval) while the worker finishes the block after the send, and that wait
# would be counted as latency. perf_counter is CLOCK_MONOTONIC, the same clock in every process.
LISTENER = """
import gc, json, socket, sys, time
gc.disable()
n, prefix = int(sys.argv[1]), b"/serumlite/params\\x00"
stamps = [0] * n
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
sock.settimeout(120.0)
print(sock.getsockname()[1], flush=True)
count = 0
buf = bytearray(65535)
try:
    while count < n:
        size = sock.recv_into(buf)
        t = time.perf_counter_ns()
        if buf[: len(prefix)] == prefix:
            stamps[count] = t
            count += 1
            sock.settimeout(3.0)
except TimeoutError:
    pass
print(json.dumps(stamps[:count]), flush=True)
"""


def latency(settings: Settings, audio: Path, block_size: int, seconds: float) -> dict[str, Any]:
    """Block's arrival -> `/serumlite/params` received in another process, one tick per block, real-time pace."""
    block_s = block_size / SR
    n_blocks = int(seconds / block_s)
    listener = subprocess.Popen(
        [sys.executable, "-c", LISTENER, str(n_blocks)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert listener.stdout is not None
    port = int(listener.stdout.readline())
    s = with_overrides(
        settings,
        {
            "audio.sample_rate_hz": SR,
            "audio.block_size": block_size,
            "audio.fast": False,
            "server.output": "osc",
            "server.control_tick_s": block_s,
            "osc.listen_port": 0,
            "osc.send_port": port,
        },
    )
    server = LiveServer(s, InputSpec("file", path=audio))
    source = server.file_source
    if source is None or server.osc_out is None:
        listener.kill()
        raise RuntimeError("latency: the server has no file source or no OSC output")
    n_blocks = source.n_blocks = min(source.n_blocks, n_blocks)
    stamping = StampingInput(source.input_cb, n_blocks)
    source.input_cb = stamping
    picked = Stamps(server.worker.process_block, n_blocks)
    server.worker.process_block = picked  # type: ignore[method-assign]
    sent = Stamps(server.osc_out.send_params, n_blocks)
    server.osc_out.send_params = sent  # type: ignore[method-assign]
    server.start()
    server.run()
    server.stop()
    out, _ = listener.communicate(timeout=30.0)
    received = np.array(json.loads(out.strip().splitlines()[-1]), dtype=np.int64)
    n = min(len(received), stamping.n, picked.count, sent.count)
    arrival = stamping.stamps_ns[:n]
    after_ms = (received[:n] - arrival) / 1e6
    total_ms = after_ms + block_s * 1000.0
    return {
        "block_size": block_size,
        "blocks": int(n),
        "latency_ms": _pcts(total_ms),
        "latency_after_block_ms": _pcts(after_ms),
        "latency_parts_ms": {
            "wake": _pcts((picked.ns[:n] - arrival) / 1e6),
            "process_to_send": _pcts((sent.ns[:n] - picked.ns[:n]) / 1e6),
            "delivery": _pcts((received[:n] - sent.ns[:n]) / 1e6),
        },
        "target_ms": round(block_s * 1000.0 + 1.0, 3),
    }


def _pcts(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        "p50": round(float(np.percentile(values, 50)), 3),
        "p99": round(float(np.percentile(values, 99)), 3),
        "max": round(float(np.max(values)), 3),
    }


def default_audio(settings: Settings) -> Path:
    folder = Path(settings.corpus.default) / "audio"
    files = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
    if not files:
        raise ValueError(f"no audio in {folder}: pass --audio FILE")
    return files[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/live.py", description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print one JSON object (the default output too)")
    p.add_argument("--settings", default=None, help="settings YAML (default: environment_settings.yaml)")
    p.add_argument("--model", default=None, help="model directory (default: server.model)")
    p.add_argument("--audio", default=None, help="input file (default: the first demo-corpus file)")
    p.add_argument("--latency-s", type=float, default=10.0, help="seconds of real-time streaming for latency")
    p.add_argument("--realtime-s", type=float, default=60.0, help="seconds of the JACK real-time run (0: skip)")
    p.add_argument("--soak-s", type=float, default=0.0, help="a soak run of this many seconds instead (RSS growth)")
    args = p.parse_args(argv)
    try:
        settings = with_overrides(load_settings(args.settings), {"server.model": args.model})
        audio = Path(args.audio) if args.audio else default_audio(settings)
        if not audio.is_file():
            raise ValueError(f"--audio {audio}: file not found")
        model = Path(settings.server.model)
        if not (model / "model.yaml").is_file():
            raise ValueError(f"--model {model}: no model.yaml (train one with train.py, or pass --model)")
    except (SettingsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result: dict[str, Any] = {"model": str(model), "audio": str(audio), "sample_rate": SR}
    by_block = {}
    for block_size in tqdm((512, 256), desc="per-block timing", file=sys.stderr):
        by_block[str(block_size)] = block_timing(settings, audio, block_size)
    result["block_us"] = by_block["512"]["block_us"]
    result["block_budget_ratio"] = by_block["512"]["block_budget_ratio"]
    result["by_block_size"] = by_block
    ref = reference_fft_us()
    result["reference_fft_us"] = round(ref, 2)
    result["ratio_to_fft"] = round(result["block_us"]["p50"] / ref, 2)
    result["components_p50_us"] = component_us(settings, model)
    lat = latency(settings, audio, 512, args.latency_s)
    result["latency_ms"] = lat["latency_ms"]
    result["latency_after_block_ms"] = lat["latency_after_block_ms"]
    result["latency_parts_ms"] = lat["latency_parts_ms"]
    result["latency_blocks"] = lat["blocks"]
    run_s = args.soak_s or args.realtime_s
    if run_s > 0:
        result.update(realtime_run(model, run_s, soak=args.soak_s > 0))
    else:
        result["xruns"] = None
        result["xruns_skipped"] = "--realtime-s 0"
    result["targets"] = {
        "block_us_p99": TARGET_P99_US,
        "latency_ms_p99": lat["target_ms"],
        "xruns": TARGET_XRUNS,
        "rss_growth_mb": TARGET_RSS_MB,
    }
    result["meets"] = {
        "block_us_p99": result["block_us"]["p99"] <= TARGET_P99_US,
        "latency_ms_p99": result["latency_ms"]["p99"] <= lat["target_ms"],
        "xruns": result["xruns"] == TARGET_XRUNS if result["xruns"] is not None else None,
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
