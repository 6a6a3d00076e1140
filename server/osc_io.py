"""OSC transport: the receiving UDP thread (`OscServer`) and the sender (`OscOut`).

Input (`OscServer`): UDP datagrams on `osc.listen_host:osc.listen_port` (plus `osc.wekinator_in_port`
in Wekinator mode), handed to `server.osc_protocol.Dispatcher.handle_datagram` with a reply function
that answers from the receiving socket to the sender's address.
Output (`OscOut`): preallocated OSC packets sent to `osc.send_host:osc.send_port` (`/serumlite/params`
24 floats in wire order, `/serumlite/<name>` per parameter when `osc.per_param`, `/serumlite/note`,
`/serumlite/gate`, `/agent/features` echo) or, in Wekinator mode, `/wek/outputs` to
`osc.wekinator_out_port`. Sending never raises on network errors: they are counted (`failed`).
"""

from __future__ import annotations

import errno
import itertools
import logging
import select
import socket
import threading
from types import TracebackType

import numpy as np

from server.config import OscSettings
from server.osc_protocol import (
    ADDR_FEATURES,
    ADDR_GATE,
    ADDR_NOTE,
    ADDR_PARAMS,
    ADDR_WEK_OUTPUTS,
    MAX_FEATURES,
    Dispatcher,
)
from synth.params import N_PARAMS, PARAMS

log = logging.getLogger(__name__)

MAX_DATAGRAM_BYTES = 65535
POLL_INTERVAL_S = 0.05  # how often the receiving thread checks for stop()
MAX_BATCH = 1024  # datagrams read per socket before looking at stop() again


def _osc_string(text: str) -> bytes:
    raw = text.encode("utf-8") + b"\x00"
    return raw + b"\x00" * (-len(raw) % 4)


class FloatPacket:
    """A preallocated OSC message: a fixed address and `n_floats` float32 arguments.

    `values` is a big-endian float32 view into the packet bytes: writing it (e.g. `values[:] = x`)
    updates the datagram in place, so sending allocates nothing."""

    def __init__(self, address: str, n_floats: int) -> None:
        head = _osc_string(address) + _osc_string("," + "f" * n_floats)
        self.buffer = bytearray(head + bytes(4 * n_floats))
        self.values = np.frombuffer(self.buffer, dtype=">f4", offset=len(head), count=n_floats)


class PerParamPackets:
    """The 24 `/serumlite/<name> f` messages back to back in one buffer, one memoryview each.

    `write(values_be)` scatters a big-endian float32 frame into the 24 packets in one numpy step."""

    def __init__(self) -> None:
        chunks: list[bytes] = []
        positions: list[int] = []
        offset = 0
        for spec in PARAMS:
            head = _osc_string(spec.osc_address) + _osc_string(",f")
            positions.extend(range(offset + len(head), offset + len(head) + 4))
            chunks.append(head + bytes(4))
            offset += len(head) + 4
        self.buffer = bytearray(b"".join(chunks))
        self._bytes = np.frombuffer(self.buffer, dtype=np.uint8)
        self._positions = np.array(positions, dtype=np.intp)
        view = memoryview(self.buffer)
        starts = np.cumsum([0] + [len(c) for c in chunks])
        self.datagrams = [view[int(a) : int(b)] for a, b in itertools.pairwise(starts)]

    def write(self, values_be: np.ndarray) -> None:
        self._bytes[self._positions] = values_be.view(np.uint8)


def resolve_host(host: str, what: str) -> str:
    """A host name or IP as an IPv4 address string; ValueError naming the setting otherwise."""
    try:
        return socket.gethostbyname(host)
    except (OSError, UnicodeError) as exc:
        raise ValueError(f"{what}: cannot resolve host '{host}' ({exc})") from None


class OscOut:
    """Sends the server's OSC output from one unbound, non-blocking UDP socket.

    Call from one thread (the worker). `sent` / `failed` count datagrams; a failed send (no route,
    buffer full) is counted and never raised. `sock` may be any object with `sendto(data, addr)`
    (tests use a recorder)."""

    def __init__(self, settings: OscSettings | None = None, *, sock: socket.socket | None = None) -> None:
        self.settings = settings or OscSettings()
        host = resolve_host(self.settings.send_host, "osc.send_host")
        self.target = (host, int(self.settings.send_port))
        self.wekinator_target = (host, int(self.settings.wekinator_out_port))
        self.wekinator = self.settings.format == "wekinator"
        self.per_param = bool(self.settings.per_param)
        self._owns_sock = sock is None
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
        self.sock = sock
        self.sent = 0
        self.failed = 0
        self._params = FloatPacket(ADDR_WEK_OUTPUTS if self.wekinator else ADDR_PARAMS, N_PARAMS)
        self._per_param = PerParamPackets()
        self._frame = np.zeros(N_PARAMS, dtype=np.float32)  # clipped frame, native byte order
        self._note = FloatPacket(ADDR_NOTE, 1)
        self._gate = FloatPacket(ADDR_GATE, 1)
        self._features: dict[int, FloatPacket] = {}

    def counters(self) -> dict[str, int]:
        return {"osc_sent": self.sent, "osc_send_failed": self.failed}

    def _send(self, datagram: bytearray | memoryview, target: tuple[str, int]) -> None:
        try:
            self.sock.sendto(datagram, target)
        except OSError:  # ECONNREFUSED after an ICMP unreachable, ENOBUFS, EAGAIN: count and go on
            self.failed += 1
            return
        self.sent += 1

    def send_params(self, frame_0to1: np.ndarray) -> None:
        """One parameter frame [24] in wire order, clipped to 0..1 (plus per-parameter messages if on)."""
        if frame_0to1.shape != (N_PARAMS,):
            raise ValueError(f"send_params: expected a frame of shape ({N_PARAMS},), got {frame_0to1.shape}")
        np.maximum(frame_0to1, 0.0, out=self._frame)  # ufuncs with `out`: no temporary arrays
        np.minimum(self._frame, 1.0, out=self._frame)
        self._params.values[:] = self._frame
        self._send(self._params.buffer, self.wekinator_target if self.wekinator else self.target)
        if self.per_param:
            self._per_param.write(self._params.values)
            for datagram in self._per_param.datagrams:
                self._send(datagram, self.target)

    def send_note(self, midi: float) -> None:
        """`/serumlite/note f`: the MIDI note (fractional while gliding)."""
        self._note.values[0] = midi
        self._send(self._note.buffer, self.target)

    def send_gate(self, on: bool) -> None:
        """`/serumlite/gate f`: 1.0 on note start, 0.0 on release (floats: Pd reads no T/F)."""
        self._gate.values[0] = 1.0 if on else 0.0
        self._send(self._gate.buffer, self.target)

    def send_features(self, values: np.ndarray) -> None:
        """`/agent/features f x K`: the input descriptors (feature echo); one packet kept per K."""
        n_values = int(values.shape[0])
        if not 1 <= n_values <= MAX_FEATURES or values.ndim != 1:
            raise ValueError(f"send_features: expected 1..{MAX_FEATURES} values in 1-D, got shape {values.shape}")
        packet = self._features.get(n_values)
        if packet is None:
            packet = self._features[n_values] = FloatPacket(ADDR_FEATURES, n_values)
        packet.values[:] = values
        self._send(packet.buffer, self.target)

    def close(self) -> None:
        if self._owns_sock:
            self.sock.close()

    def __enter__(self) -> OscOut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OscServer:
    """Receives OSC on a background thread and hands each datagram to a `Dispatcher`.

    `endpoints` default to `osc.listen_host:osc.listen_port`, plus `osc.wekinator_in_port` in
    Wekinator mode; port 0 binds a free port (`addresses` tells which). `start()` binds (OSError
    with the address named if it cannot) and starts the thread; `stop()` joins it and closes."""

    def __init__(self, dispatcher: Dispatcher, endpoints: list[tuple[str, int]] | None = None) -> None:
        self.dispatcher = dispatcher
        settings = dispatcher.settings
        if endpoints is None:
            endpoints = [(settings.listen_host, settings.listen_port)]
            if settings.format == "wekinator":
                endpoints.append((settings.listen_host, settings.wekinator_in_port))
        self.endpoints = list(endpoints)
        self._socks: list[socket.socket] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.reply_failed = 0

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound (host, port) of each endpoint (after `start()`)."""
        return [sock.getsockname()[:2] for sock in self._socks]

    def start(self) -> OscServer:
        if self._thread is not None:
            raise RuntimeError("OscServer already started")
        try:
            for host, port in self.endpoints:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self._socks.append(sock)
                try:
                    sock.bind((resolve_host(host, "osc.listen_host"), int(port)))
                except OSError as exc:
                    raise OSError(exc.errno, f"OSC: cannot listen on {host}:{port} ({exc.strerror})") from None
                sock.setblocking(False)
        except (OSError, ValueError):
            self._close_sockets()
            raise
        wide = [f"{h}:{p}" for h, p in self.addresses if not h.startswith("127.")]
        if wide and not self.dispatcher.allow:
            log.warning("OSC listening on %s: only loopback peers are accepted (osc.allow is empty)", ", ".join(wide))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="osc-server", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("OSC server thread did not stop within %.1f s", timeout_s)
            self._thread = None
        self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in self._socks:
            sock.close()
        self._socks = []

    def __enter__(self) -> OscServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        socks = list(self._socks)
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(socks, [], [], POLL_INTERVAL_S)
            except (OSError, ValueError):  # a socket closed under us: stopping
                return
            for sock in ready:
                self._drain(sock)

    def _drain(self, sock: socket.socket) -> None:
        def reply(data: bytes, address: tuple[str, int]) -> None:
            try:
                sock.sendto(data, address)
            except OSError:
                self.reply_failed += 1

        for _ in range(MAX_BATCH):  # bounded, so that stop() is seen even under a flood
            try:
                data, sender = sock.recvfrom(MAX_DATAGRAM_BYTES)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno not in (errno.ECONNREFUSED, errno.ECONNRESET):  # ICMP from an earlier reply
                    log.error("OSC receive failed: %s", exc)
                    return
                continue
            self.dispatcher.handle_datagram(data, sender, reply)
