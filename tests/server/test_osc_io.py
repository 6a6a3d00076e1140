"""OSC transport over loopback with real sockets: OscServer start/stop, replies to the sender,
OscOut packets (parsed back by python-osc), Wekinator routing, failure counting, no allocation."""

from __future__ import annotations

import socket
import time
import tracemalloc
from collections.abc import Iterator

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage

from server.config import OscSettings
from server.osc_io import OscOut, OscServer
from server.osc_protocol import Dispatcher, encode_message
from server.osc_protocol import OscOut as ReExportedOscOut
from synth.params import N_PARAMS, PARAMS


class Control:
    def __init__(self) -> None:
        self.enabled: list[bool] = []
        self.features: list[np.ndarray] = []

    def set_enabled(self, on: bool) -> None:
        self.enabled.append(on)

    def set_hold(self, on: bool) -> None: ...
    def load_model(self, path: str) -> str:
        return path

    def set_step_size(self, step_0to1: float) -> None: ...
    def reset(self) -> None: ...
    def set_param(self, index: int, value_0to1: float) -> None: ...
    def load_preset(self, path: str) -> None: ...

    def set_external_features(self, values: np.ndarray) -> None:
        self.features.append(values)

    def stats(self) -> dict[str, object]:
        return {"blocks": 1}


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    yield sock
    sock.close()


def wait_for(predicate, timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return False


def test_reexport_is_the_same_class() -> None:
    assert ReExportedOscOut is OscOut


@pytest.mark.timeout(20)
def test_server_round_trip_and_clean_stop(listener: socket.socket) -> None:
    control = Control()
    dispatcher = Dispatcher(control, OscSettings(listen_port=0))  # type: ignore[arg-type]
    server = OscServer(dispatcher).start()
    (host, port) = server.addresses[0]
    assert host == "127.0.0.1" and port > 0
    try:
        listener.sendto(encode_message("/server/ping", [42]), (host, port))
        reply = OscMessage(listener.recv(1024))
        assert (reply.address, reply.params) == ("/server/pong", [42])
        listener.sendto(encode_message("/agent/enable", [1.0]), (host, port))
        listener.sendto(b"\x00garbage", (host, port))
        assert wait_for(lambda: dispatcher.rejected["malformed"] == 1 and control.enabled == [True])
    finally:
        t0 = time.monotonic()
        server.stop()
        assert time.monotonic() - t0 < 1.0
    assert server._thread is None and server.addresses == []
    # the port is free again: a new server can bind it
    with OscServer(dispatcher, [("127.0.0.1", port)]) as again:
        assert again.addresses == [("127.0.0.1", port)]


@pytest.mark.timeout(20)
def test_wekinator_mode_listens_on_both_ports(listener: socket.socket) -> None:
    control = Control()
    dispatcher = Dispatcher(control, OscSettings(format="wekinator"))  # type: ignore[arg-type]
    with OscServer(dispatcher, [("127.0.0.1", 0), ("127.0.0.1", 0)]) as server:
        control_port, wek_port = (port for _, port in server.addresses)
        listener.sendto(encode_message("/wek/inputs", [0.25, 0.5, 0.75]), ("127.0.0.1", wek_port))
        listener.sendto(encode_message("/agent/enable", [0]), ("127.0.0.1", control_port))
        assert wait_for(lambda: len(control.features) == 1 and control.enabled == [False])
    assert control.features[0].tolist() == [0.25, 0.5, 0.75]
    assert OscServer(dispatcher).endpoints == [("127.0.0.1", 9000), ("127.0.0.1", 6448)]


def _local_ip() -> str | None:
    """This machine's address on its default route (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 9))
        except OSError:
            return None
        ip = probe.getsockname()[0]
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


@pytest.mark.timeout(20)
@pytest.mark.parametrize("allowed", [False, True])
def test_wide_binding_enforces_the_allow_list(allowed: bool, caplog: pytest.LogCaptureFixture) -> None:
    ip = _local_ip()
    if ip is None:
        pytest.skip("no non-loopback IPv4 address on this machine")
    control = Control()
    dispatcher = Dispatcher(control, OscSettings(allow=(ip,) if allowed else ()))  # type: ignore[arg-type]
    with OscServer(dispatcher, [("0.0.0.0", 0)]) as server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        port = server.addresses[0][1]
        peer.bind((ip, 0))
        peer.sendto(encode_message("/agent/enable", [1]), (ip, port))
        peer.sendto(encode_message("/agent/enable", [0]), ("127.0.0.1", port))  # from ip, to loopback: same peer
        assert wait_for(lambda: dispatcher.datagrams == 2)
    assert ("only loopback peers" in caplog.text) != allowed
    if allowed:
        assert control.enabled == [True, False] and dispatcher.rejected_total == 0
    else:
        assert control.enabled == [] and dispatcher.rejected["not_allowed"] == 2


def test_bind_failure_names_the_address() -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 0))
    port = blocker.getsockname()[1]
    try:
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            OscServer(Dispatcher(Control()), [("127.0.0.1", port)]).start()  # type: ignore[arg-type]
    finally:
        blocker.close()


def test_osc_out_params_per_param_note_gate_features(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    out = OscOut(OscSettings(send_port=port, per_param=True))
    frame = np.linspace(-0.5, 1.5, N_PARAMS).astype(np.float32)  # out of range: clipped on the wire
    out.send_params(frame)
    msg = OscMessage(listener.recv(2048))
    assert msg.address == "/serumlite/params"
    np.testing.assert_allclose(msg.params, np.clip(frame, 0, 1), atol=1e-7)
    for spec in PARAMS:
        single = OscMessage(listener.recv(256))
        assert single.address == spec.osc_address and single.params[0] == pytest.approx(msg.params[spec.index])
    out.send_note(60.5)
    out.send_gate(True)
    out.send_gate(False)
    out.send_features(np.array([1.0, -2.0, 3.5], dtype=np.float32))
    got = [OscMessage(listener.recv(256)) for _ in range(4)]
    assert [(m.address, m.params) for m in got] == [
        ("/serumlite/note", [60.5]),
        ("/serumlite/gate", [1.0]),
        ("/serumlite/gate", [0.0]),
        ("/agent/features", [1.0, -2.0, 3.5]),
    ]
    assert out.counters() == {"osc_sent": 1 + N_PARAMS + 4, "osc_send_failed": 0}
    with pytest.raises(ValueError, match="shape"):
        out.send_params(np.zeros(23, dtype=np.float32))
    out.close()


def test_osc_out_wekinator_sends_wek_outputs_to_its_port(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    out = OscOut(OscSettings(format="wekinator", send_port=1, wekinator_out_port=port))
    out.send_params(np.full(N_PARAMS, 0.25, dtype=np.float32))
    msg = OscMessage(listener.recv(2048))
    assert msg.address == "/wek/outputs" and msg.params == [0.25] * N_PARAMS
    out.close()


def test_osc_out_counts_failures_and_rejects_bad_host() -> None:
    class Broken:
        def sendto(self, data: bytes, address: tuple[str, int]) -> int:
            raise OSError("no buffer space")

    out = OscOut(OscSettings(), sock=Broken())  # type: ignore[arg-type]
    out.send_params(np.zeros(N_PARAMS, dtype=np.float32))
    out.send_note(64.0)
    assert out.counters() == {"osc_sent": 0, "osc_send_failed": 2}
    with pytest.raises(ValueError, match="osc.send_host.*no-such-host.invalid"):
        OscOut(OscSettings(send_host="no-such-host.invalid"))


def test_osc_out_sends_without_allocating(listener: socket.socket) -> None:
    out = OscOut(OscSettings(send_port=listener.getsockname()[1], per_param=True))
    frame = np.full(N_PARAMS, 0.5, dtype=np.float32)
    features = np.zeros(20, dtype=np.float32)
    for _ in range(3):  # warm-up: caches and first-call allocations
        out.send_params(frame)
        out.send_features(features)
        out.send_note(60.0)
    tracemalloc.start(1)
    try:
        before = tracemalloc.take_snapshot()
        for i in range(500):
            frame[0] = i / 500
            out.send_params(frame)
            out.send_features(features)
            out.send_note(60.0 + i % 12)
            out.send_gate(i % 2 == 0)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    mine = [d for d in after.compare_to(before, "lineno") if "osc_io.py" in d.traceback[0].filename]
    mine += [d for d in after.compare_to(before, "filename") if "numpy" in d.traceback[0].filename]
    # nothing kept per call: at most the `sent` counter's int object (ints above 256 are objects)
    assert sum(d.size_diff for d in mine) <= 64 and sum(d.count_diff for d in mine) <= 2, mine
    out.close()
