"""Dispatcher tests without sockets: every SPEC address against a fake ServerControl, rejections
counted by reason, replies to the sender, and a hypothesis fuzz test on the raw-datagram entry point."""

from __future__ import annotations

import logging
import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from server.config import OscSettings
from server.osc_protocol import (
    REJECT_REASONS,
    Dispatcher,
    ServerControl,
    encode_message,
    flatten_stats,
    parse_allow,
    peer_allowed,
)
from synth.params import N_PARAMS, PARAM_NAMES

LOCAL = ("127.0.0.1", 50123)


class FakeControl:
    """Records every call; `fail_loads` / `n_features` make load_* and features raise ValueError."""

    def __init__(self, fail_loads: bool = False, n_features: int | None = None, crash: bool = False) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.fail_loads = fail_loads
        self.n_features = n_features
        self.crash = crash

    def _record(self, name: str, *args: object) -> None:
        if self.crash:
            raise RuntimeError("boom")
        self.calls.append((name, args))

    def set_enabled(self, on: bool) -> None:
        self._record("set_enabled", on)

    def set_hold(self, on: bool) -> None:
        self._record("set_hold", on)

    def load_model(self, path: str) -> str:
        if self.fail_loads:
            raise ValueError(f"{path}: no model.yaml")
        self._record("load_model", path)
        return "demo_model"

    def set_step_size(self, step_0to1: float) -> None:
        self._record("set_step_size", step_0to1)

    def reset(self) -> None:
        self._record("reset")

    def set_param(self, index: int, value_0to1: float) -> None:
        self._record("set_param", index, value_0to1)

    def load_preset(self, path: str) -> None:
        if self.fail_loads:
            raise ValueError("not a preset")
        self._record("load_preset", path)

    def set_external_features(self, values: np.ndarray) -> None:
        if self.n_features is not None and values.shape[0] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got {values.shape[0]}")
        self._record("set_external_features", values)

    def stats(self) -> dict[str, object]:
        return {"blocks": 12, "xruns": 0, "block_us": {"p50": 80.5, "p99": 140.0}, "model": "demo_model"}


class Replies:
    def __init__(self) -> None:
        self.sent: list[tuple[OscMessage, tuple[str, int]]] = []

    def __call__(self, data: bytes, address: tuple[str, int]) -> None:
        self.sent.append((OscMessage(data), address))


def make(control: FakeControl | None = None, **osc: object) -> tuple[Dispatcher, FakeControl, Replies]:
    control = control or FakeControl()
    return Dispatcher(control, OscSettings(**osc)), control, Replies()  # type: ignore[arg-type]


def send(dispatcher: Dispatcher, replies: Replies, address: str, *args: object, sender=LOCAL) -> None:
    dispatcher.handle_datagram(encode_message(address, args), sender, replies)


def test_fake_control_satisfies_protocol() -> None:
    assert isinstance(FakeControl(), ServerControl)


@pytest.mark.parametrize("address,method", [("/agent/enable", "set_enabled"), ("/agent/hold", "set_hold")])
def test_switches_accept_ints_floats_and_bools(address: str, method: str) -> None:
    d, control, replies = make()
    for value in (1, 0, 1.0, 0.0, True):
        send(d, replies, address, value)
    assert control.calls == [(method, (v,)) for v in (True, False, True, False, True)]
    assert d.rejected_total == 0 and d.dispatched == 5


@pytest.mark.parametrize(
    "args,reason",
    [
        ((2,), "out_of_range"),
        ((0.5,), "out_of_range"),
        (("on",), "wrong_type"),
        ((), "wrong_arity"),
        ((1, 1), "wrong_arity"),
    ],
)
def test_switch_rejections(args: tuple[object, ...], reason: str) -> None:
    d, control, replies = make()
    send(d, replies, "/agent/enable", *args)
    assert control.calls == [] and d.rejected[reason] == 1 and d.rejected_total == 1


def test_model_load_replies_loaded_or_error_to_sender() -> None:
    d, control, replies = make()
    send(d, replies, "/agent/model", "models/demo", sender=("127.0.0.1", 7777))
    msg, to = replies.sent[-1]
    assert (msg.address, msg.params, to) == ("/agent/model/loaded", ["demo_model"], ("127.0.0.1", 7777))
    assert control.calls == [("load_model", ("models/demo",))]

    d, control, replies = make(FakeControl(fail_loads=True))
    send(d, replies, "/agent/model", "models/missing")
    msg, _ = replies.sent[-1]
    assert msg.address == "/agent/error" and "models/missing" in msg.params[0] and "\n" not in msg.params[0]
    assert d.rejected["load_failed"] == 1
    send(d, replies, "/agent/model", "")
    send(d, replies, "/agent/model", 3.0)
    assert d.rejected["out_of_range"] == 1 and d.rejected["wrong_type"] == 1


@pytest.mark.parametrize("error,reason", [(FileNotFoundError, "load_failed"), (RuntimeError, "handler_error")])
def test_load_errors_other_than_value_error_still_reply(error: type[Exception], reason: str) -> None:
    class Failing(FakeControl):
        def load_preset(self, path: str) -> None:
            raise error(f"{path}: nope")

        def load_model(self, path: str) -> str:
            raise error(f"{path}: nope")

    d, _, replies = make(Failing())
    send(d, replies, "/synth/preset", "x.json")
    send(d, replies, "/agent/model", "models/x")
    assert [m.address for m, _ in replies.sent] == ["/agent/error", "/agent/error"]
    assert "x.json: nope" in replies.sent[0][0].params[0] and d.rejected[reason] == 2


def test_step_size_range_and_int_accepted() -> None:
    d, control, replies = make()
    for value in (0.25, 1, 0):
        send(d, replies, "/agent/step_size", value)
    for bad in (1.5, -0.1, math.nan, math.inf):
        send(d, replies, "/agent/step_size", bad)
    assert control.calls == [("set_step_size", (0.25,)), ("set_step_size", (1.0,)), ("set_step_size", (0.0,))]
    assert d.rejected["out_of_range"] == 4


def test_reset_takes_no_arguments() -> None:
    d, control, replies = make()
    send(d, replies, "/agent/reset")
    send(d, replies, "/agent/reset", 1)
    assert control.calls == [("reset", ())] and d.rejected["wrong_arity"] == 1


def test_every_param_address_maps_to_its_wire_index() -> None:
    d, control, replies = make()
    for index, name in enumerate(PARAM_NAMES):
        send(d, replies, f"/synth/param/{name}", index / N_PARAMS)
    assert [c[1][0] for c in control.calls] == list(range(N_PARAMS))
    assert all(c[0] == "set_param" and c[1][1] == pytest.approx(i / N_PARAMS) for i, c in enumerate(control.calls))
    send(d, replies, "/synth/param/no_such_param", 0.5)
    send(d, replies, "/synth/param/filter_cutoff", 1.01)
    send(d, replies, "/synth/param/filter_cutoff", "x")
    assert (d.rejected["unknown_param"], d.rejected["out_of_range"], d.rejected["wrong_type"]) == (1, 1, 1)


def test_preset_and_its_error_reply() -> None:
    d, control, replies = make()
    send(d, replies, "/synth/preset", "synth/presets/bass.json")
    assert control.calls == [("load_preset", ("synth/presets/bass.json",))] and replies.sent == []
    d, control, replies = make(FakeControl(fail_loads=True))
    send(d, replies, "/synth/preset", "nope.json")
    assert replies.sent[0][0].address == "/agent/error" and d.rejected["load_failed"] == 1


def test_features_native_and_wekinator() -> None:
    d, control, replies = make(FakeControl(n_features=3))
    send(d, replies, "/agent/features", 0.5, 2, -60.0)
    values = control.calls[0][1][0]
    assert isinstance(values, np.ndarray) and values.dtype == np.float32 and values.tolist() == [0.5, 2.0, -60.0]
    send(d, replies, "/agent/features", 1.0)  # wrong K: the server refuses
    send(d, replies, "/agent/features")
    send(d, replies, "/agent/features", 1.0, "x", 2.0)
    send(d, replies, "/agent/features", 1e300, 0.0, 0.0)  # a double that overflows float32
    assert [d.rejected[r] for r in ("bad_features", "wrong_arity", "wrong_type", "out_of_range")] == [1, 1, 1, 1]
    send(d, replies, "/wek/inputs", 1.0, 2.0, 3.0)  # native mode: not an address
    assert d.rejected["unknown_address"] == 1

    d, control, replies = make(FakeControl(n_features=3), format="wekinator")
    send(d, replies, "/wek/inputs", 1.0, 2.0, 3.0)
    assert control.calls[0][0] == "set_external_features" and d.rejected_total == 0


def test_ping_pong_echoes_arguments_to_sender() -> None:
    d, _, replies = make()
    send(d, replies, "/server/ping", sender=("127.0.0.1", 4242))
    send(d, replies, "/server/ping", 17, 0.5)
    assert [(m.address, m.params) for m, _ in replies.sent] == [("/server/pong", []), ("/server/pong", [17, 0.5])]
    assert replies.sent[0][1] == ("127.0.0.1", 4242)


def test_stats_reply_has_server_and_osc_counters() -> None:
    d, _, replies = make()
    send(d, replies, "/nope")
    send(d, replies, "/server/stats")
    msg, _ = replies.sent[-1]
    pairs = dict(zip(msg.params[::2], msg.params[1::2], strict=True))
    assert pairs["blocks"] == 12 and pairs["block_us.p99"] == 140.0 and pairs["model"] == "demo_model"
    assert pairs["osc_rejected"] == 1 and pairs["osc_rejected_by_reason.unknown_address"] == 1
    assert pairs["osc_received"] == 2


def test_flatten_stats_types() -> None:
    flat = flatten_stats({"on": True, "big": 2**40, "n": np.int64(3), "x": np.float32(0.5), "d": {"e": [1]}})
    assert flat == ["on", 1, "big", float(2**40), "n", 3, "x", 0.5, "d.e", "[1]"]


def test_bundles_dispatch_every_message() -> None:
    d, control, replies = make()
    bundle = OscBundleBuilder(IMMEDIATELY)
    for address, arg in (("/agent/enable", 1), ("/agent/hold", 0), ("/bogus", 1)):
        bundle.add_content(_msg(address, arg))
    d.handle_datagram(bundle.build().dgram, LOCAL, replies)
    assert control.calls == [("set_enabled", (True,)), ("set_hold", (False,))] and d.rejected["unknown_address"] == 1


def _msg(address: str, arg: object):
    builder = OscMessageBuilder(address)
    builder.add_arg(arg)
    return builder.build()


def test_peer_allow_list() -> None:
    none = parse_allow(())
    assert peer_allowed("127.0.0.1", none) and peer_allowed("127.3.2.1", none) and peer_allowed("::1", none)
    assert peer_allowed("::ffff:127.0.0.1", none) and not peer_allowed("not-an-ip", none)
    assert not peer_allowed("192.168.1.20", none) and peer_allowed("192.168.1.20", parse_allow([" 192.168.1.20"]))
    with pytest.raises(ValueError, match="osc.allow: 'stage-laptop' is not an IP address"):
        Dispatcher(FakeControl(), OscSettings(allow=("10.0.0.1", "stage-laptop")))  # type: ignore[arg-type]
    d, control, replies = make(allow=("10.0.0.5",))
    send(d, replies, "/agent/enable", 1, sender=("10.0.0.6", 1000))
    send(d, replies, "/server/ping", sender=("10.0.0.6", 1000))
    send(d, replies, "/agent/enable", 1, sender=("10.0.0.5", 1000))
    assert control.calls == [("set_enabled", (True,))] and d.rejected["not_allowed"] == 2 and len(replies.sent) == 0


def test_server_bug_is_counted_not_raised() -> None:
    d, _, replies = make(FakeControl(crash=True))
    send(d, replies, "/agent/enable", 1)
    send(d, replies, "/agent/reset")
    assert d.rejected["handler_error"] == 2


def test_reply_transport_failure_is_counted() -> None:
    d, _, _ = make()

    def broken_reply(data: bytes, address: tuple[str, int]) -> None:
        raise OSError("network down")

    d.handle_datagram(encode_message("/server/ping"), LOCAL, broken_reply)
    assert d.rejected["handler_error"] == 1


def test_malformed_datagrams() -> None:
    d, control, replies = make()
    for data in (b"", b"garbage", b"/agent/enable\x00\x00\x00,i\x00\x00", b"#bundle\x00" + b"\x00" * 3):
        d.handle_datagram(data, LOCAL, replies)
    assert control.calls == [] and d.rejected["malformed"] == 4 and d.received == 4


def test_odd_type_tags_and_bundle_elements_do_not_flood_the_log(caplog: pytest.LogCaptureFixture) -> None:
    d, control, replies = make()
    odd_tag = b"/agent/enable\x00\x00\x00,ci\x00" + b"\x00\x00\x00\x41" + b"\x00\x00\x00\x01"
    odd_bundle = b"#bundle\x00" + bytes(8) + b"\x00\x00\x00\x04junk"
    with caplog.at_level(logging.DEBUG):
        for _ in range(50):
            d.handle_datagram(odd_tag, LOCAL, replies)
            d.handle_datagram(odd_bundle, LOCAL, replies)
    assert [r for r in caplog.records if "pythonosc" in r.pathname] == []
    assert d.datagrams == 100 and control.calls == []


# --- fuzz: nothing escapes handle_datagram ---------------------------------------------------------
ADDRESSES = [
    "/agent/enable", "/agent/hold", "/agent/model", "/agent/step_size", "/agent/reset", "/agent/features",
    "/synth/param/filter_cutoff", "/synth/param/bogus", "/synth/preset", "/server/ping", "/server/stats",
    "/wek/inputs", "/", "/x",
]  # fmt: skip
OSC_ARG = st.one_of(
    st.integers(-(2**31), 2**31 - 1),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20).filter(lambda s: "\x00" not in s),
    st.binary(min_size=1, max_size=16),
    st.booleans(),
    st.none(),
)


def _checked(d: Dispatcher, before: int) -> None:
    assert d.datagrams > before
    assert d.received == d.dispatched + d.rejected_total
    assert set(d.rejected) == set(REJECT_REASONS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=256))
def test_fuzz_random_bytes(data: bytes) -> None:
    for fmt in ("native", "wekinator"):
        d, _, replies = make(FakeControl(n_features=4), format=fmt)
        d.handle_datagram(data, LOCAL, replies)
        _checked(d, 0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    address=st.sampled_from(ADDRESSES),
    args=st.lists(OSC_ARG, max_size=6),
    fmt=st.sampled_from(["native", "wekinator"]),
)
def test_fuzz_typed_arguments(address: str, args: list[object], fmt: str) -> None:
    d, _, replies = make(FakeControl(n_features=2, fail_loads=len(args) % 2 == 1), format=fmt)
    d.handle_datagram(encode_message(address, args), LOCAL, replies)
    _checked(d, 0)


@settings(max_examples=200, deadline=None)
@given(prefix=st.sampled_from(ADDRESSES), tail=st.binary(max_size=64), cut=st.integers(0, 40))
def test_fuzz_truncated_and_corrupted_messages(prefix: str, tail: bytes, cut: int) -> None:
    valid = encode_message(prefix, [1.0, "abc", 3])
    d, _, replies = make()
    d.handle_datagram(valid[: len(valid) - cut] + tail, LOCAL, replies)
    d.handle_datagram(struct.pack(">8s", b"#bundle") + tail, LOCAL, replies)
    _checked(d, 1)
