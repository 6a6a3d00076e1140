"""A real PortAudio device: the JACK dummy driver (no sound card needed).

The fixture starts a private `jackd --no-realtime -d dummy` server (a name of its own, so parallel
runs do not meet), jackd2's `jack_simple_client` plays a 240 Hz sine into JACK, and
`live_server.py` runs in a subprocess (PortAudio scans devices once, so it must start after
jackd). The tone is wired into the server's input with `jack_connect`; the server's parameters
must respond, its recorded synth output must sound at the tone's pitch, and OSC must stay alive
when the device goes away. Skipped, with the reason, only when jackd cannot start here.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message import OscMessage

from server.osc_protocol import encode_message

pytestmark = pytest.mark.realtime
REPO = Path(__file__).resolve().parents[2]
SR, PERIOD = 48000, 512
JACK_NAMES = ("soundgym-test-0", "soundgym-test-1", "soundgym-test-2")
PLAYER_HZ = SR / 200  # jack_simple_client (jackd2's example client) plays a 200-sample sine table


def _jack_env(name: str) -> dict[str, str]:
    return {**os.environ, "JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1"}


def _ports(env: dict[str, str]) -> list[str]:
    out = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True, timeout=10)
    return out.stdout.split() if out.returncode == 0 else []


def _start_jackd(env: dict[str, str]) -> subprocess.Popen[bytes] | None:
    jackd = subprocess.Popen(  # -t: a generous client timeout, so a loaded machine does not drop clients
        [
            "jackd",
            "--no-realtime",
            "-t",
            "10000",
            "-d",
            "dummy",
            "-r",
            str(SR),
            "-p",
            str(PERIOD),
            "-C",
            "2",
            "-P",
            "2",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        if _ports(env):
            return jackd
        if jackd.poll() is not None:
            return None
        time.sleep(0.05)
    jackd.kill()
    return None


@pytest.fixture
def jack() -> Iterator[dict[str, str]]:
    if shutil.which("jackd") is None or shutil.which("jack_connect") is None:
        pytest.skip("jackd not installed (apt-get install -y --no-install-recommends jackd2)")
    # A small pool of fixed names: JACK has 8 server slots, and a slot left by a killed server is
    # reclaimed only by a server of the same name (unique names per run would fill them up).
    for name in JACK_NAMES:
        env = _jack_env(name)
        jackd = _start_jackd(env)
        if jackd is not None:
            break
    else:
        pytest.skip(f"jackd (dummy driver) could not start on this machine under any of {JACK_NAMES}")
    env["_JACKD_PID"] = str(jackd.pid)
    try:
        yield env
    finally:
        jackd.terminate()
        try:
            jackd.wait(10)
        except subprocess.TimeoutExpired:
            jackd.kill()


def _wait_for_port(env: dict[str, str], predicate: object, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [p for p in _ports(env) if predicate(p)]  # type: ignore[operator]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no JACK port appeared; ports: {_ports(env)}")


def _server(env: dict[str, str], model: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        str(REPO / "live_server.py"),
        "--model",
        str(model),
        "--input",
        "system",
        "--sample-rate",
        str(SR),
        "--block-size",
        str(PERIOD),
        "--osc-port",
        "0",
        "--osc-send-port",
        "9",
        "--stats-json",
        str(out / "stats.json"),
        "--trace-csv",
        str(out / "trace.csv"),
        *extra,
    ]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _osc_port(proc: subprocess.Popen[str]) -> int:
    assert proc.stderr is not None
    for _ in range(50):
        line = proc.stderr.readline()
        if "OSC control on" in line:
            return int(line.rsplit(":", 1)[1])
    raise AssertionError("the server never said where OSC listens")


def _dominant_hz(audio: np.ndarray) -> float:
    """Fundamental by autocorrelation (the synth's default wave is rich in harmonics)."""
    x = audio - audio.mean()
    ac = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * len(x))) ** 2)[: len(x)]
    lo, hi = SR // 2000, SR // 50
    lag = lo + int(np.argmax(ac[lo:hi]))
    return SR / lag


def test_server_hears_a_jack_device_and_its_synth_plays_the_pitch(
    jack: dict[str, str], doubles: SimpleNamespace, tmp_path: Path
) -> None:
    model = doubles.write_follow_model(tmp_path / "volume_follower", cutoff_gain=0.0)  # only the volume moves
    player = subprocess.Popen(["jack_simple_client"], env=jack, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(jack, lambda p: p == "jack_simple_client:output1")
        server = _server(
            jack, model, tmp_path, "--output", "both", "--output-device", "system",
            "--record", str(tmp_path / "synth.wav"), "--duration", "5",
        )  # fmt: skip
        server_in = _wait_for_port(jack, lambda p: p.startswith("PortAudio") and ":in_" in p)
        subprocess.run(["jack_connect", "jack_simple_client:output1", server_in], env=jack, check=True, timeout=10)
        _, err = server.communicate(timeout=60)
        assert server.returncode == 0, err
    finally:
        player.kill()
        player.wait(10)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["sample_rate"] == SR and stats["block_size"] == PERIOD
    assert stats["blocks"] > 100 and stats["control_ticks"] > 20  # ~5 s of callbacks through PortAudio
    assert stats["input_stream"]["callbacks"] > 100 and stats["output_stream"]["callbacks"] > 100
    rows = list(csv.DictReader((tmp_path / "trace.csv").open()))
    heard = [r for r in rows if float(r["in_loudness_db"]) > -40.0]
    assert len(heard) > 50, "the tone never reached the server"
    assert np.median([float(r["in_pitch_hz"]) for r in heard]) == pytest.approx(PLAYER_HZ, rel=0.02)
    volumes = [float(r["master_volume"]) for r in rows]
    assert max(volumes) - min(volumes) > 0.05, "the parameters did not respond to the input"
    synth, sr = sf.read(str(tmp_path / "synth.wav"), dtype="float32")
    assert sr == SR and len(synth) > 2 * SR
    assert np.count_nonzero(np.abs(synth) > 0.01) > SR, "the internal synth stayed silent"
    note = round(69 + 12 * np.log2(PLAYER_HZ / 440.0))  # the follower rounds to semitones
    expected_hz = 440.0 * 2 ** ((note - 69) / 12)
    start = int(np.argmax(np.abs(synth) > 0.01))
    assert _dominant_hz(synth[start + SR // 2 : start + SR // 2 + 8192]) == pytest.approx(expected_hz, rel=0.015)


def test_device_loss_is_reported_once_and_osc_stays_alive(
    jack: dict[str, str], follow_model: Path, tmp_path: Path
) -> None:
    server = _server(jack, follow_model, tmp_path, "--output", "osc")
    try:
        port = _osc_port(server)
        _wait_for_port(jack, lambda p: p.startswith("PortAudio") and ":in_" in p)
        os.kill(int(jack["_JACKD_PID"]), signal.SIGKILL)  # the device vanishes under the server
        time.sleep(3.0)
        ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ctl.settimeout(3.0)
        ctl.sendto(encode_message("/server/ping", [5]), ("127.0.0.1", port))
        reply = OscMessage(ctl.recvfrom(65535)[0])
        ctl.close()
        assert reply.address == "/server/pong" and reply.params == [5]
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, err
    assert err.count("audio device lost") == 1, err
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["device_errors"] == 1


# The callbacks PortAudio runs must not need the GIL: this process holds it for a second (a pure-Python loop
# under a 60 s switch interval, so no other thread gets in) and counts the blocks the streams went on to
# process meanwhile: the server's compiled callbacks, then, as the control, a Python callback stream.
# The same run checks that their thread was made real-time (audio.callback_priority) where allowed.
GIL_FREE_SCRIPT = r"""
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
import sounddevice as sd
from server import rt_thread
from server.audio_io import DeviceAudio
from server.callbacks import InputCallback, OutputCallback
from server.control import FrameExchange
from server.ring_buffer import RingBuffer, WakePipe
from server.stats import LiveStats
from synth.stream import StreamingVoice

def blocks_while_the_gil_is_held(*counts):
    before = [count() for count in counts]
    sys.setswitchinterval(60.0)
    end = time.perf_counter() + 1.0
    while time.perf_counter() < end:
        pass
    sys.setswitchinterval(0.005)
    return [count() - b for count, b in zip(counts, before)]

stats = LiveStats(48000, 512)
ring = RingBuffer(1 << 16)
inp = InputCallback(ring, stats.input, wake=WakePipe())
out = OutputCallback(StreamingVoice(48000, 512), FrameExchange(), stats.output, 512, record=RingBuffer(1 << 20))
device = DeviceAudio(sample_rate_hz=48000, block_size=512, stats=stats, input_cb=inp, input_device="system",
                     output_cb=out, output_device="system", callback_priority=10, sd=sd)
device.start()
time.sleep(0.5)
compiled = blocks_while_the_gil_is_held(lambda: stats.input.callbacks, lambda: stats.output.callbacks)
fifo = rt_thread.is_realtime(stats.input.thread)
device.stop()
spare = threading.Thread(target=time.sleep, args=(0.5,))
spare.start()
allowed = rt_thread.promote(spare.ident, 10) == ""  # may this process make a thread real-time at all?
calls = [0]
def python_callback(outdata, frames, time_info, status):
    calls[0] += 1
with sd.OutputStream(device="system", samplerate=48000, blocksize=512, channels=1, callback=python_callback):
    time.sleep(0.5)
    python = blocks_while_the_gil_is_held(lambda: calls[0])
print(json.dumps({"compiled": compiled, "python": python, "ring_frames": ring.frames_written, "fifo": fifo,
                  "realtime_threads": device.realtime_threads, "allowed": allowed}))
"""


def test_the_audio_callbacks_run_while_python_holds_the_gil(jack: dict[str, str]) -> None:
    run = subprocess.run(
        [sys.executable, "-c", GIL_FREE_SCRIPT, str(REPO)], env=jack, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    expected = SR / PERIOD  # blocks in the second the GIL was held: 93.75
    assert min(result["compiled"]) >= 0.6 * expected, result  # both streams went on without Python
    assert result["python"][0] <= 3, result  # while a Python callback waits for the GIL (the test can fail)
    assert result["ring_frames"] >= 0.6 * expected * PERIOD, result
    # audio.callback_priority: the callbacks' thread (one JACK client thread for both) under SCHED_FIFO,
    # where this process may do that (root, or an rtprio limit); else it keeps its policy
    assert result["fifo"] == result["allowed"] and result["realtime_threads"] == int(result["allowed"]), result
