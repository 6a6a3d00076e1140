"""`python live_server.py --model models/<name>`: the live loop (SPEC "Live server modes").

Input: command-line flags over `environment_settings.yaml` (`--settings FILE`): the model
directory, `--input default | <device name or index> | FILE | osc`, `--output osc | synth | both`.
Output: OSC to Pure Data / Max / a DAW and/or the internal synth on an output device; on exit
(end of file, `--duration`, SIGINT/SIGTERM) the stats JSON, the recorded WAV, the plot and the
trace CSV where asked. Exit status 0 on a clean run, 2 on bad input (one line on stderr), 1 if
the loop failed while running.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from settings import SettingsError, load_settings, with_overrides


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="live_server.py",
        description="SoundGym live loop: audio in -> descriptors -> policy -> Serum-lite parameters -> OSC / synth.",
    )
    p.add_argument("--settings", default=None, help="settings YAML (default: environment_settings.yaml)")
    p.add_argument("--model", default=None, help="model directory (server.model)")
    p.add_argument("--input", default=None, help="default | <device name or index> | FILE | osc (audio.input)")
    p.add_argument("--output", choices=("osc", "synth", "both"), default=None, help="server.output")
    p.add_argument("--output-device", default=None, help="device for --output synth/both, or 'none' (record only)")
    p.add_argument("--sample-rate", type=int, default=None, help="audio.sample_rate_hz")
    p.add_argument("--block-size", type=int, default=None, help="frames per block (audio.block_size)")
    p.add_argument("--channel", type=int, default=None, help="input channel heard, from 0 (audio.input_channel)")
    p.add_argument("--fast", action="store_true", default=None, help="stream a file as fast as possible")
    p.add_argument("--duration", type=float, default=None, help="stop after SECONDS (0: run until stopped)")
    p.add_argument("--record", default=None, help="write the internal synth's output to this WAV")
    p.add_argument("--stats-json", default=None, help="write counters and per-block timing here on exit")
    p.add_argument("--plot", default=None, help="write a PNG of input vs synth descriptors on exit")
    p.add_argument("--trace-csv", default=None, help="write every control tick as CSV on exit")
    p.add_argument("--step-size", type=float, default=None, help="scale of the per-tick change, 0..1")
    p.add_argument("--osc-format", choices=("native", "wekinator"), default=None, help="osc.format")
    p.add_argument("--osc-host", default=None, help="host to listen on (osc.listen_host)")
    p.add_argument("--osc-port", type=int, default=None, help="port to listen on, 0: any free (osc.listen_port)")
    p.add_argument("--osc-send-port", type=int, default=None, help="port parameters go to (osc.send_port)")
    p.add_argument("--osc-allow", default=None, help="comma-separated peer IPs allowed beyond loopback (osc.allow)")
    p.add_argument("--per-param", action="store_true", default=None, help="also send /serumlite/<name> (osc.per_param)")
    p.add_argument("--feature-echo", action="store_true", default=None, help="echo descriptors (osc.feature_echo)")
    p.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr")
    return p


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    allow = None if args.osc_allow is None else tuple(a.strip() for a in args.osc_allow.split(",") if a.strip())
    return {
        "server.model": args.model,
        "audio.input": args.input,
        "server.output": args.output,
        "audio.output_device": args.output_device,
        "audio.sample_rate_hz": args.sample_rate,
        "audio.block_size": args.block_size,
        "audio.input_channel": args.channel,
        "audio.fast": args.fast,
        "server.duration_s": args.duration,
        "server.record": args.record,
        "server.stats_json": args.stats_json,
        "server.plot": args.plot,
        "server.trace_csv": args.trace_csv,
        "server.step_size": args.step_size,
        "osc.format": args.osc_format,
        "osc.listen_host": args.osc_host,
        "osc.listen_port": args.osc_port,
        "osc.send_port": args.osc_send_port,
        "osc.allow": allow,
        "osc.per_param": args.per_param,
        "osc.feature_echo": args.feature_echo,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="live_server: %(message)s", stream=sys.stderr
    )
    try:
        settings = with_overrides(load_settings(args.settings), overrides_from(args))
        from server.app import LiveServer
        from server.audio_io import parse_input

        server = LiveServer(settings, parse_input(settings.audio.input))
    except (SettingsError, ValueError, RuntimeError, OSError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2

    def on_signal(signum: int, _frame: object) -> None:
        logging.getLogger("live_server").info("signal %d: stopping", signum)
        server.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.start()
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    status = 0
    try:
        server.run(settings.server.duration_s)
    finally:
        try:
            stats = server.stop()
        except RuntimeError as exc:
            print(f"error: {_one_line(exc)}", file=sys.stderr)
            return 1
    block_us = stats["block_us"]
    logging.getLogger("live_server").info(
        "%d blocks, %d control ticks, %d xruns, block p50 %.0f µs / p99 %.0f µs, OSC sent %d rejected %d",
        stats["blocks"],
        stats["control_ticks"],
        stats["xruns"],
        block_us["p50"],
        block_us["p99"],
        stats["osc_sent"],
        stats["osc_rejected"],
    )
    for flag, value in (
        ("--record", settings.server.record),
        ("--stats-json", settings.server.stats_json),
        ("--plot", settings.server.plot),
        ("--trace-csv", settings.server.trace_csv),
    ):
        if value:
            logging.getLogger("live_server").info("%s %s", flag, Path(value))
    if server.device is not None and server.device.abandoned:
        # PortAudio's exit hook would wait forever on the stream of a vanished device: stats are
        # written, so leave without it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    raise SystemExit(main())
