"""The real-time run of `benchmarks/live.py` (its `xruns` and soak keys): `live_server.py --input system
--output both` in a subprocess through the JACK dummy driver, after a reference client (the same two streams
with empty callbacks), while another process spins on a core (not during a soak, which tracks RSS only).

`realtime_run` returns `xruns`, `reference_xruns`, `reference`, `realtime_s`, `realtime_blocks`,
`realtime_block_us`, `realtime_input_stream`, `realtime_output_stream`, `realtime_ring_overruns`,
`realtime_callback_threads`, `load`; with
`soak` also `soak_s`, `rss_start_mb`, `rss_end_mb`, `rss_growth_mb`, `rss_per_minute_mb`; or `xruns` null and
`xruns_skipped` (the reason). Imported as `benchmarks.live_realtime` (live.py puts the repository on sys.path).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
SR = 48000  # as benchmarks/live.py (and REFERENCE_CLIENT below)

JACK_NAMES = ("soundgym-bench-0", "soundgym-bench-1")
# The reference for xruns: the same two streams with callbacks that do nothing, same JACK, same load.
# argv: seconds [gil]; with "gil" a thread also holds the GIL ~150 us of every 10.5 ms (the live worker's
# pattern: Python between its kernels), so that GIL waits in the callbacks would show as xruns.
REFERENCE_CLIENT = """
import json, sys, threading, time
import sounddevice as sd
sys.setswitchinterval(0.0005)  # as server.app
flagged = [0, 0]
running = [True]
def make(i):
    def cb(*args):
        status = args[-1]
        if status.input_overflow or status.input_underflow or status.output_overflow or status.output_underflow:
            flagged[i] += 1
    return cb
def hold_gil():
    count = 0
    while running[0]:
        start = time.perf_counter()
        while time.perf_counter() - start < 150e-6:
            count += 1
        time.sleep(0.0105)
kw = dict(device="system", samplerate=48000, blocksize=512, channels=1, dtype="float32")
with sd.InputStream(callback=make(0), **kw), sd.OutputStream(callback=lambda o, f, t, s: make(1)(s), **kw):
    if sys.argv[2:] == ["gil"]:
        threading.Thread(target=hold_gil, daemon=True).start()
    time.sleep(float(sys.argv[1]))
    running[0] = False
print(json.dumps({"xruns": flagged[0] + flagged[1]}))
"""


def realtime_run(model: Path, seconds: float, soak: bool) -> dict[str, Any]:
    """live_server.py through the JACK dummy driver while another process spins on a core."""
    started = start_jackd()
    if isinstance(started, str):
        return {"xruns": None, "xruns_skipped": started}
    jackd, env = started
    # The xrun run loads a core; the soak (RSS only) does not, to spare the shared machine.
    burner = None if soak else subprocess.Popen([sys.executable, "-c", "while True: pass"])
    out = Path(tempfile.mkdtemp(prefix="sg_live_bench_"))
    try:
        ref_xruns = reference_xruns(env, min(seconds, 60.0))
        port = _free_udp_port()
        cmd = [
            sys.executable, str(REPO / "live_server.py"), "--model", str(model.resolve()), "--input", "system",
            "--output", "both", "--output-device", "system", "--sample-rate", str(SR), "--block-size", "512",
            "--osc-port", str(port), "--osc-send-port", "9", "--duration", str(seconds),
            "--stats-json", str(out / "stats.json"), "--quiet",
        ]  # fmt: skip
        server = subprocess.Popen(cmd, env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
        try:
            _wait_until_serving(port, server, timeout_s=300.0)  # imports, JIT and warm-up are not the soak
        except RuntimeError as exc:
            server.kill()
            return {"xruns": None, "xruns_skipped": str(exc)}
        ready = time.monotonic()
        rss_start = rss_end = None
        rss_per_minute: list[float] = []
        with tqdm(total=int(seconds), desc="real-time run", unit="s", file=sys.stderr) as bar:
            while server.poll() is None:
                time.sleep(1.0)
                elapsed = time.monotonic() - ready
                bar.n = min(int(elapsed), int(seconds))
                bar.refresh()
                rss = _rss_mb(server.pid)
                if soak and rss is not None:
                    if rss_start is None and elapsed >= 10.0:
                        rss_start = rss
                    if len(rss_per_minute) < int(elapsed // 60) + 1:
                        rss_per_minute.append(round(rss, 1))
                    if elapsed < seconds - 1.0:
                        rss_end = rss
        err = server.stderr.read() if server.stderr else ""
        if server.returncode != 0:
            return {"xruns": None, "xruns_skipped": f"live_server.py failed: {err.strip()[-300:]}"}
        stats = json.loads((out / "stats.json").read_text())
        result: dict[str, Any] = {
            "xruns": stats["xruns"],
            "reference_xruns": ref_xruns,
            "reference": "the same two JACK streams with empty callbacks, same load, just before (<= 60 s)",
            "realtime_s": seconds,
            "realtime_blocks": stats["blocks"],
            "realtime_block_us": stats["block_us"],
            "realtime_input_stream": stats["input_stream"],
            "realtime_output_stream": stats["output_stream"],
            "realtime_ring_overruns": stats["ring_overruns"],
            "realtime_callback_threads": stats.get("realtime_callback_threads"),  # SCHED_FIFO (callback_priority)
            "load": "none (soak)" if soak else "another process spinning on one core",
        }
        if soak:
            result["soak_s"] = seconds
            result["rss_start_mb"] = rss_start
            result["rss_end_mb"] = rss_end
            result["rss_growth_mb"] = round(rss_end - rss_start, 2) if rss_start and rss_end else None
            result["rss_per_minute_mb"] = rss_per_minute
        return result
    finally:
        if burner is not None:
            burner.kill()
        jackd.terminate()
        jackd.wait(10)
        shutil.rmtree(out, ignore_errors=True)


def start_jackd() -> tuple[subprocess.Popen[bytes], dict[str, str]] | str:
    """A JACK dummy server (48 kHz, 512 frames, not real-time) and the environment that reaches it,
    or why not (a one-line reason)."""
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        return "jackd not installed"
    for name in JACK_NAMES:  # fixed names: a slot left by a killed server is reclaimed by its name only
        env = {**os.environ, "JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1"}
        jackd = subprocess.Popen(
            ["jackd", "--no-realtime", "-t", "10000", "-d", "dummy", "-r", str(SR), "-p", "512"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if _wait(lambda env=env: subprocess.run(["jack_lsp"], env=env, capture_output=True).returncode == 0, 10.0):
            return jackd, env
        jackd.kill()
        jackd.wait(10)
    return "jackd (dummy driver) did not start"


def reference_xruns(env: dict[str, str], seconds: float, *, hold_gil: bool = False) -> int | None:
    """xruns of the reference client (empty callbacks) over `seconds`; None if it failed."""
    argv = [sys.executable, "-c", REFERENCE_CLIENT, str(seconds), *(["gil"] if hold_gil else [])]
    run = subprocess.run(argv, env=env, capture_output=True, text=True)
    return int(json.loads(run.stdout)["xruns"]) if run.returncode == 0 else None


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(port: int, proc: subprocess.Popen[str], timeout_s: float) -> None:
    """Ping the server's OSC port until it answers (it answers once its loop is running)."""
    from server.osc_protocol import encode_message

    ping = encode_message("/server/ping")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.poll() is None:
            sock.sendto(ping, ("127.0.0.1", port))
            try:
                sock.recvfrom(65535)
                return
            except (TimeoutError, ConnectionRefusedError):
                continue
    raise RuntimeError(f"live_server.py did not answer /server/ping on port {port}")


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _wait(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False
