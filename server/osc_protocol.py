"""OSC protocol: the control boundary (`ServerControl`), incoming dispatch, and outgoing messages.

Input: raw UDP datagrams (bytes) and the sender's address, from `server.osc_io.OscServer`.
Output: calls on a `ServerControl` (the live server), reply datagrams handed to a `reply` callable,
and the addresses `server.osc_io.OscOut` sends (`/serumlite/params`, note, gate, feature echo, `/wek/outputs`).

Parsing is python-osc's (`OscPacket`: messages and bundles); this module adds validation: every
message that is malformed, unknown, wrongly typed, of the wrong arity, out of range or from a peer
that is not allowed is counted by reason (`Dispatcher.rejected`) and ignored; nothing raises out of
`Dispatcher.handle_datagram`. Pure Data sends every number as a float, so integer arguments accept
integral floats and float arguments accept integers. No sockets here: the transport
(`server.osc_io`: `OscServer`, the receiving thread, and `OscOut`, the sender) lives next door;
`from server.osc_protocol import OscOut` works too (a lazy re-export).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, runtime_checkable

import numpy as np
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket, ParseError

from server.config import OscSettings
from synth.params import OSC_PARAMS_ADDRESS, PARAMS

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

# Incoming (server listens on osc.listen_host:osc.listen_port; Wekinator inputs on osc.wekinator_in_port).
ADDR_ENABLE = "/agent/enable"
ADDR_HOLD = "/agent/hold"
ADDR_MODEL = "/agent/model"
ADDR_STEP_SIZE = "/agent/step_size"
ADDR_RESET = "/agent/reset"
ADDR_FEATURES = "/agent/features"
ADDR_PARAM_PREFIX = "/synth/param/"
ADDR_PRESET = "/synth/preset"
ADDR_PING = "/server/ping"
ADDR_STATS = "/server/stats"
ADDR_WEK_INPUTS = "/wek/inputs"
# Replies (to the sender's address).
ADDR_MODEL_LOADED = "/agent/model/loaded"
ADDR_ERROR = "/agent/error"
ADDR_PONG = "/server/pong"
# Outgoing (to osc.send_host:osc.send_port; Wekinator outputs to osc.wekinator_out_port).
ADDR_PARAMS = OSC_PARAMS_ADDRESS
ADDR_NOTE = "/serumlite/note"
ADDR_GATE = "/serumlite/gate"
ADDR_WEK_OUTPUTS = "/wek/outputs"

MAX_FEATURES = 256  # longest accepted /agent/features or /wek/inputs list
# What patches/serumlite_features.pd sends as /agent/features, in order (SPEC descriptor names).
PD_FEATURE_NAMES: tuple[str, ...] = ("rms_db", "centroid", "pitch_hz", "pitch_confidence")
MAX_STRING_CHARS = 4096  # longest accepted path argument
FLOAT32_MAX = float(np.finfo(np.float32).max)

REJECT_REASONS: tuple[str, ...] = (
    "malformed",  # not an OSC packet
    "not_allowed",  # peer not in osc.allow
    "unknown_address",
    "wrong_arity",  # wrong number of arguments
    "wrong_type",  # e.g. a string where a number is expected
    "out_of_range",  # NaN/inf, outside 0..1, enable/hold not 0/1, empty path
    "unknown_param",  # /synth/param/<name> with a name not in the table
    "load_failed",  # /agent/model or /synth/preset refused by the server (ValueError, OSError, KeyError)
    "bad_features",  # /agent/features refused by the server (e.g. wrong count)
    "handler_error",  # the server (or the reply transport) raised anything else: a bug, logged once
)

Reply = Callable[[bytes, tuple[str, int]], None]
Arg = object  # a parsed OSC argument: int, float, str, bytes, bool, None, list, tuple...


@runtime_checkable
class ServerControl(Protocol):
    """What OSC control messages do to the live server (implemented by `server.app.LiveServer`).

    Called from the OSC thread, never from an audio callback. Arguments are already validated
    (numbers finite and in range, indices valid, paths non-empty). Methods that can fail on their
    input raise `ValueError` (or, for files, `OSError`) with a one-line reason; the dispatcher
    counts the message as rejected and, for model and preset loads, replies `/agent/error s` with
    the reason. Any other exception is a bug: counted (`handler_error`), logged once, not raised.
    """

    def set_enabled(self, on: bool) -> None:
        """`/agent/enable`: True runs the policy, False pauses it (parameters stay)."""

    def set_hold(self, on: bool) -> None:
        """`/agent/hold`: True freezes the parameter frame, False releases it."""

    def load_model(self, path: str) -> str:
        """`/agent/model`: hot-swap the model directory without a dropout; returns the model name."""
        ...

    def set_step_size(self, step_0to1: float) -> None:
        """`/agent/step_size`: scale of the per-tick parameter change, 0..1."""

    def reset(self) -> None:
        """`/agent/reset`: back to the model's start preset."""

    def set_param(self, index: int, value_0to1: float) -> None:
        """`/synth/param/<name>`: manual override of parameter `index` (wire order) to a 0..1 value."""

    def load_preset(self, path: str) -> None:
        """`/synth/preset`: load a preset JSON file (ValueError or OSError with the reason if it cannot)."""

    def set_external_features(self, values: np.ndarray) -> None:
        """`/agent/features` or `/wek/inputs`: K external descriptors (float32, a fresh array).

        Raises ValueError when K does not match what the model expects (`--input osc`)."""

    def stats(self) -> dict[str, object]:
        """Counters and timing for `/server/stats` (flat or nested dict of numbers/strings)."""
        ...


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_allow(allow: Iterable[str]) -> frozenset[IpAddress]:
    """`osc.allow` as IP addresses; ValueError naming the entry that is not one."""
    out = set()
    for entry in allow:
        try:
            out.add(ipaddress.ip_address(str(entry).strip()))
        except ValueError:
            raise ValueError(f"osc.allow: '{entry}' is not an IP address") from None
    return frozenset(out)


def peer_allowed(host: str, allow: frozenset[IpAddress]) -> bool:
    """Loopback peers are always allowed; any other peer only when its IP is in `allow`."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return ip.is_loopback or bool(mapped and mapped.is_loopback) or ip in allow or mapped in allow


def encode_message(address: str, args: Iterable[Arg] = ()) -> bytes:
    """One OSC message as bytes (python-osc's builder: int -> i, float -> f (d beyond float32), str -> s)."""
    builder = OscMessageBuilder(address=address)
    for arg in args:
        if isinstance(arg, float) and not _fits_float32(arg):
            builder.add_arg(arg, arg_type=OscMessageBuilder.ARG_TYPE_DOUBLE)
        else:
            builder.add_arg(arg)
    return builder.build().dgram


def _fits_float32(value: float) -> bool:
    try:
        struct.pack(">f", value)
    except OverflowError:
        return False
    return True


def flatten_stats(stats: Mapping[str, object], prefix: str = "") -> list[Arg]:
    """`{"a": 1, "b": {"c": 2.5}}` -> `["a", 1, "b.c", 2.5]`: key/value pairs Pd's [route] can read.

    Numbers become int or float, everything else a string; bools become 0/1 (Pd has no T/F)."""
    out: list[Arg] = []
    for key, value in stats.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(flatten_stats(value, prefix=f"{name}."))
        elif isinstance(value, bool):
            out += [name, int(value)]
        elif isinstance(value, int | np.integer):
            out += [name, int(value) if -(2**31) <= int(value) < 2**31 else float(value)]
        elif isinstance(value, float | np.floating):
            out += [name, float(value)]
        else:
            out += [name, str(value)]
    return out


class MessageRejectedError(Exception):
    """A message the dispatcher ignores; `reason` is one of REJECT_REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


def _as_number(value: Arg) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MessageRejectedError("wrong_type", f"expected a number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise MessageRejectedError("out_of_range", "not a finite number")
    return out


def _as_switch(value: Arg) -> bool:
    """0/1 from an int, an integral float (Pd) or an OSC T/F."""
    if isinstance(value, bool):
        return value
    number = _as_number(value)
    if number not in (0.0, 1.0):
        raise MessageRejectedError("out_of_range", f"expected 0 or 1, got {number}")
    return number == 1.0


def _as_0to1(value: Arg) -> float:
    number = _as_number(value)
    if not 0.0 <= number <= 1.0:
        raise MessageRejectedError("out_of_range", f"expected 0..1, got {number}")
    return number


def _as_path(value: Arg) -> str:
    if not isinstance(value, str):
        raise MessageRejectedError("wrong_type", f"expected a string, got {type(value).__name__}")
    if not value.strip() or len(value) > MAX_STRING_CHARS or "\x00" in value:
        raise MessageRejectedError("out_of_range", "empty or overlong path")
    return value


def _arity(args: tuple[Arg, ...], n: int) -> None:
    if len(args) != n:
        raise MessageRejectedError("wrong_arity", f"expected {n} argument(s), got {len(args)}")


def _not_from_python_osc(record: logging.LogRecord) -> bool:
    """A root-logger filter: python-osc warns there for every odd type tag or bundle element; the
    dispatcher counts such datagrams instead, so that a peer cannot flood the log."""
    return "pythonosc" not in record.pathname


class Dispatcher:
    """Maps validated OSC messages onto a `ServerControl`; counts what it receives and rejects.

    `handle_datagram(data, sender, reply)` is the raw entry point (never raises); `dispatch(address,
    args, sender, reply)` handles one parsed message. Replies (`/agent/model/loaded`, `/agent/error`,
    `/server/pong`, `/server/stats`) go to `reply(bytes, sender)`, i.e. back to the sender.
    """

    def __init__(self, control: ServerControl, settings: OscSettings | None = None) -> None:
        self.control = control
        self.settings = settings or OscSettings()
        self.allow = parse_allow(self.settings.allow)
        self.datagrams = 0  # UDP datagrams handed in
        self.received = 0  # messages (inside bundles too) and unparseable datagrams
        self.dispatched = 0  # messages that reached the server
        self.rejected: dict[str, int] = dict.fromkeys(REJECT_REASONS, 0)
        self._logged_bugs: set[str] = set()
        if _not_from_python_osc not in logging.getLogger().filters:
            logging.getLogger().addFilter(_not_from_python_osc)
        self._handlers: dict[str, Callable[[tuple[Arg, ...], tuple[str, int], Reply], None]] = {
            ADDR_ENABLE: self._enable,
            ADDR_HOLD: self._hold,
            ADDR_MODEL: self._model,
            ADDR_STEP_SIZE: self._step_size,
            ADDR_RESET: self._reset,
            ADDR_FEATURES: self._features,
            ADDR_PRESET: self._preset,
            ADDR_PING: self._ping,
            ADDR_STATS: self._stats,
        }
        if self.settings.format == "wekinator":
            self._handlers[ADDR_WEK_INPUTS] = self._features
        for spec in PARAMS:
            self._handlers[ADDR_PARAM_PREFIX + spec.name] = self._param_handler(spec.index)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def counters(self) -> dict[str, object]:
        """`osc_received`, `osc_dispatched`, `osc_rejected` and `osc_rejected_by_reason`."""
        return {
            "osc_datagrams": self.datagrams,
            "osc_received": self.received,
            "osc_dispatched": self.dispatched,
            "osc_rejected": self.rejected_total,
            "osc_rejected_by_reason": dict(self.rejected),
        }

    def handle_datagram(self, data: bytes, sender: tuple[str, int], reply: Reply) -> None:
        """Parse one UDP datagram (message or bundle) and dispatch each message. Never raises."""
        self.datagrams += 1
        if not peer_allowed(str(sender[0]), self.allow):
            self.received += 1
            self.rejected["not_allowed"] += 1
            return
        try:
            messages = [timed.message for timed in OscPacket(bytes(data)).messages]
        except (ParseError, ValueError, IndexError, TypeError, struct.error, OverflowError, RecursionError):
            self.received += 1
            self.rejected["malformed"] += 1
            return
        for message in messages:
            try:
                address, params = message.address, tuple(message.params)
            except (ParseError, ValueError, IndexError, TypeError, struct.error):
                self.received += 1
                self.rejected["malformed"] += 1
                continue
            self.dispatch(address, params, sender, reply)

    def dispatch(self, address: str, args: tuple[Arg, ...], sender: tuple[str, int], reply: Reply) -> None:
        """Validate and run one message. Never raises."""
        self.received += 1
        handler = self._handlers.get(address) if isinstance(address, str) else None
        if handler is None:
            reason = "unknown_param" if isinstance(address, str) and address.startswith(ADDR_PARAM_PREFIX) else None
            self.rejected[reason or "unknown_address"] += 1
            return
        try:
            handler(args, sender, reply)
        except MessageRejectedError as rejection:
            self.rejected[rejection.reason] += 1
            return
        except Exception as exc:  # a bug in the server or a reply transport: count, log once, keep serving
            self.rejected["handler_error"] += 1
            key = f"{address}:{type(exc).__name__}"
            if key not in self._logged_bugs:
                self._logged_bugs.add(key)
                log.error("OSC %s: the server raised %s: %s", address, type(exc).__name__, exc)
            return
        self.dispatched += 1

    # --- handlers: validate, call the server, reply -------------------------------------------------
    def _enable(self, args: tuple[Arg, ...], sender: tuple[str, int], reply: Reply) -> None:
        _arity(args, 1)
        self.control.set_enabled(_as_switch(args[0]))

    def _hold(self, args: tuple[Arg, ...], sender: tuple[str, int], reply: Reply) -> None:
        _arity(args, 1)
        self.control.set_hold(_as_switch(args[0]))

    def _model(self, args: tuple[Arg, ...], sender: tuple[str, int], reply: Reply) -> None:
        _arity(args, 1)
        path = _as_path(args[0])
        try:
            name = self.control.load_model(path)
        except Exception as exc:
            self._load_failed(f"model {path}", exc, sender, reply)
        reply(encode_message(ADDR_MODEL_LOADED, [str(name)]), sender)

    def _load_failed(self, what: str, exc: Exception, sender: tuple[str, int], reply: Reply) -> NoReturn:
        """Reply `/agent/error` in every case; a refused file (ValueError, OSError, KeyError) counts
        as `load_failed`, anything else is re-raised (`handler_error`, logged)."""
        reply(encode_message(ADDR_ERROR, [_one_line(f"{what}: {exc}")]), sender)
        if isinstance(exc, ValueError | OSError | KeyError):
            raise MessageRejectedError("load_failed") from exc
        raise exc

    def _step_size(self, args: tuple[Arg, ...], sender: tuple[str, int], reply: Reply) -> None:
        _arity(args, 1)
        self.control.set_step_size(_as_0to1(args[0]))

    def _reset(self, args: tuple[Arg, ...], sender: tuple[str, int], reply: Reply) -> None:
        _arity(args, 0)
        self.control.reset()

    def _features(self, args: tuple[Arg, ...], sender: tuple[str, int], reply: Reply) -> None:
        if not 1 <= len(args) <= MAX_FEATURES:
            raise MessageRejectedError("wrong_arity", f"expected 1..{MAX_FEATURES} floats, got {len(args)}")
        numbers = [_as_number(a) for a in args]
        if any(abs(x) > FLOAT32_MAX for x in numbers):  # finite doubles can overflow float32
            raise MessageRejectedError("out_of_range", "feature value overflows float32")
        values = np.array(numbers, dtype=np.float32)
        try:
            self.control.set_external_features(values)
        except ValueError as exc:
            raise MessageRejectedError("bad_features", str(exc)) from exc

    def _preset(self, args: tuple[Arg, ...], sender: tuple[str, int], reply: Reply) -> None:
        _arity(args, 1)
        path = _as_path(args[0])
        try:
            self.control.load_preset(path)
        except Exception as exc:
            self._load_failed(f"preset {path}", exc, sender, reply)

    def _ping(self, args: tuple[Arg, ...], sender: tuple[str, int], reply: Reply) -> None:
        """Replies `/server/pong` with the ping's own arguments echoed (a sequence number, a time)."""
        echo = [a for a in args if isinstance(a, int | float | str) and not isinstance(a, bool)]
        reply(encode_message(ADDR_PONG, echo), sender)

    def _stats(self, args: tuple[Arg, ...], sender: tuple[str, int], reply: Reply) -> None:
        stats = dict(self.control.stats())
        stats.update(self.counters())
        reply(encode_message(ADDR_STATS, flatten_stats(stats)), sender)

    def _param_handler(self, index: int) -> Callable[[tuple[Arg, ...], tuple[str, int], Reply], None]:
        def handler(args: tuple[Arg, ...], sender: tuple[str, int], reply: Reply) -> None:
            _arity(args, 1)
            self.control.set_param(index, _as_0to1(args[0]))

        return handler


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:MAX_STRING_CHARS]


def __getattr__(name: str) -> Any:
    """`OscOut` lives in `server.osc_io` (it owns a socket); re-exported lazily to avoid an import cycle."""
    if name == "OscOut":
        from server.osc_io import OscOut

        return OscOut
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
