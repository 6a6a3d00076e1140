"""Helpers for the Pure Data tests: free UDP ports, a headless `pd` process, and an echo helper
patch (test-only) that sends what the `sl-*` receive names carry back over OSC."""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage

from patches.pd_writer import PdPatch
from synth.params import PARAMS

PD_FLAGS = ["-nogui", "-nosound", "-nomidi", "-noprefs", "-stderr", "-sleepgrain", "1", "-r", "48000"]
PD_ERRORS = ("couldn't create", "connection failed", "error", "syntax error", "bad arguments")


def free_udp_ports(count: int) -> list[int]:
    """`count` distinct UDP ports that nothing listens on right now (held together, then released:
    ports taken one at a time may come back equal)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def free_udp_port() -> int:
    return free_udp_ports(1)[0]


def echo_helper(echo_port: int) -> str:
    """A patch that sends `/echo/params` (24 f, wire order), `/echo/note`, `/echo/gate` and
    `/echo/outdb` to 127.0.0.1:echo_port whenever the `sl-*` receive names carry a value."""
    p = PdPatch()
    to_wire = p.obj("list prepend send")
    trim = p.obj("list trim")
    netsend = p.obj("netsend -u -b")
    p.chain(to_wire, trim, netsend)
    load = p.obj("loadbang")
    connect = p.msg(f"connect 127.0.0.1 {echo_port}")
    p.chain(load, connect, netsend)
    pack = p.obj("pack" + " f" * len(PARAMS))
    for spec in PARAMS:  # inlet 0 (osc1_wave) is hot: [unpack] delivers it last
        p.connect(p.obj(f"r sl-{spec.name}"), 0, pack, spec.index)
    p.chain(pack, p.obj("oscformat echo params"), to_wire)
    for name in ("note", "gate", "out-db"):
        receive = p.obj(f"r sl-{name}")
        p.chain(receive, p.obj(f"oscformat echo {name.replace('-', '')}"), to_wire)
    # an analysis of the voice's output ([s~ sl-out~]): /echo/analysis rms_dB diff_rms_dB sigmund_pitch
    tap = p.obj("r~ sl-out~")
    env = p.obj("env~ 2048 1024")
    diff = p.obj("rzero~ 1")
    diff_env = p.obj("env~ 2048 1024")
    pitch = p.obj("sigmund~ -npts 2048 -hop 1024 pitch")
    pack = p.obj("pack f f f")
    p.chain(tap, env)
    p.chain(tap, diff, diff_env)
    p.chain(tap, pitch)
    p.connect(diff_env, 0, pack, 1)
    p.connect(pitch, 0, pack, 2)
    hold = p.obj("t b f")
    store = p.obj("f")
    later = p.obj("del 0")  # after this hop's other values have arrived
    p.connect(env, 0, hold, 0)
    p.connect(hold, 1, store, 1)
    p.connect(hold, 0, later, 0)
    p.connect(later, 0, store, 0)
    p.connect(store, 0, pack, 0)
    p.chain(pack, p.obj("oscformat echo analysis"), to_wire)
    return p.render()


class PdProcess:
    """A running headless Pd; `stderr()` returns what it printed so far (after stop)."""

    def __init__(self, patches: list[Path], sends: list[str], log_path: Path) -> None:
        pd = shutil.which("pd")
        if pd is None:
            pytest.fail("Pure Data is not installed: apt-get install -y --no-install-recommends puredata-core")
        args = [pd, *PD_FLAGS]
        for patch in patches:
            args += ["-open", str(patch)]
        for message in sends:
            args += ["-send", message]
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=str(log_path.parent))

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)
        self._log.close()
        return self.log_path.read_text(errors="replace")


def pd_errors(log: str) -> list[str]:
    """Pd's error lines; a missing `[bob~]`/`[sigmund~]` adds a hint about the package that has them."""
    lines = log.splitlines()
    errors = [line for line in lines if any(marker in line for marker in PD_ERRORS)]
    failed = [before for before, line in itertools.pairwise(lines) if "couldn't create" in line]
    if any(name in line for line in failed for name in ("bob~", "sigmund~")):
        errors.insert(0, "hint: [bob~] and [sigmund~] are in vanilla Pd's extra/ (Debian: package puredata-extra)")
    return errors


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


class EchoListener:
    """Collects `/echo/...` messages from the helper patch on a background thread."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.messages: list[OscMessage] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(OscMessage(self.sock.recv(65535)))
            except TimeoutError:
                continue

    def last(self, address: str) -> list[object] | None:
        found = [m.params for m in list(self.messages) if m.address == address]
        return found[-1] if found else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
