"""Real Pure Data (headless) round trips with the Python OSC side, on free ports.

- serumlite.pd: OscOut -> Pd -> `[s sl-<name>]` -> echo helper -> Python (values, order, note, gate);
  the voice sounds with the gate on and the default frame, is silent with every source at 0;
  its buttons reach the real Dispatcher (`/agent/enable`, `/agent/hold`, `/agent/step_size`, ...).
- serumlite.pd's voice, analysed in Pd: pitch follows the note and osc2's transpose, the wave
  morph and the cutoff move the brightness, noise has no pitch.
- serumlite_features.pd: its test tone's descriptors arrive through OscServer + Dispatcher.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from patches import features_pd, serumlite_pd
from server.config import OscSettings
from server.osc_io import OscOut, OscServer
from server.osc_protocol import PD_FEATURE_NAMES, Dispatcher, encode_message
from synth.params import N_PARAMS, PARAM_INDEX, default_vector
from tests.patches.pd_harness import (
    EchoListener,
    echo_helper,
    free_udp_port,
    free_udp_ports,
    pd_errors,
    wait_until,
)

pytestmark = [pytest.mark.realtime, pytest.mark.timeout(60)]


class Recorder:
    """A ServerControl that records calls (thread-safe enough: appends from the OSC thread)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def _add(self, name: str, *args: object) -> None:
        self.calls.append((name, args))

    def names(self) -> list[str]:
        return [name for name, _ in list(self.calls)]

    def set_enabled(self, on: bool) -> None:
        self._add("set_enabled", on)

    def set_hold(self, on: bool) -> None:
        self._add("set_hold", on)

    def load_model(self, path: str) -> str:
        self._add("load_model", path)
        return path

    def set_step_size(self, step_0to1: float) -> None:
        self._add("set_step_size", step_0to1)

    def reset(self) -> None:
        self._add("reset")

    def set_param(self, index: int, value_0to1: float) -> None:
        self._add("set_param", index, value_0to1)

    def load_preset(self, path: str) -> None:
        self._add("load_preset", path)

    def set_external_features(self, values: np.ndarray) -> None:
        self._add("set_external_features", values)

    def stats(self) -> dict[str, object]:
        return {}


@pytest.fixture
def echo() -> Iterator[EchoListener]:
    listener = EchoListener()
    yield listener
    listener.close()


@pytest.fixture
def server() -> Iterator[tuple[Recorder, Dispatcher, int]]:
    control = Recorder()
    dispatcher = Dispatcher(control, OscSettings())  # type: ignore[arg-type]
    with OscServer(dispatcher, [("127.0.0.1", 0)]) as osc_server:
        yield control, dispatcher, osc_server.addresses[0][1]


def test_serumlite_patch_round_trip(run_pd: Callable, echo: EchoListener, server) -> None:
    control, dispatcher, server_port = server
    pd_port = free_udp_port()
    sends = ["sl-ui-enable 1", "sl-ui-hold 1", "sl-ui-step_size 0.25", "sl-ui-reset bang", "sl-ui-ping bang"]
    pd = run_pd(
        {"serumlite.pd": serumlite_pd.build(pd_port, "127.0.0.1", server_port), "echo.pd": echo_helper(echo.port)},
        sends=sends,
    )
    out = OscOut(OscSettings(send_port=pd_port))
    try:
        frame = default_vector()
        frame[PARAM_INDEX["filter_cutoff"]] = 0.123  # a distinctive value in the middle of the frame

        def frame_echoed() -> bool:
            out.send_params(frame)
            return echo.last("/echo/params") is not None

        assert wait_until(frame_echoed, 5.0), "no /echo/params from Pd"
        np.testing.assert_array_equal(np.array(echo.last("/echo/params"), dtype=np.float32), frame)
        assert len(echo.last("/echo/params")) == N_PARAMS
        # per-parameter messages reach the same receive names
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.sendto(encode_message("/serumlite/filter_cutoff", [0.75]), ("127.0.0.1", pd_port))
        probe.sendto(encode_message("/serumlite/osc1_wave", [0.5]), ("127.0.0.1", pd_port))
        probe.close()
        assert wait_until(lambda: (echo.last("/echo/params") or [0])[0] == 0.5, 2.0)
        assert echo.last("/echo/params")[PARAM_INDEX["filter_cutoff"]] == 0.75
        # note and gate: the voice sounds, then releases
        out.send_params(default_vector())
        out.send_note(64.0)
        out.send_gate(True)
        assert wait_until(lambda: echo.last("/echo/note") == [64.0] and echo.last("/echo/gate") == [1.0], 2.0)
        assert wait_until(lambda: (echo.last("/echo/outdb") or [-100.0])[0] > -40.0, 3.0), echo.last("/echo/outdb")
        silent = default_vector()
        for name in ("osc1_level", "osc2_level", "noise_level"):
            silent[PARAM_INDEX[name]] = 0.0
        out.send_params(silent)
        assert wait_until(lambda: echo.last("/echo/outdb")[0] < -90.0, 3.0), echo.last("/echo/outdb")
        out.send_params(default_vector())
        assert wait_until(lambda: echo.last("/echo/outdb")[0] > -40.0, 3.0)
        out.send_gate(False)
        assert wait_until(lambda: echo.last("/echo/outdb")[0] < -90.0, 3.0), echo.last("/echo/outdb")
        # the patch's buttons reached the real dispatcher
        assert wait_until(lambda: dispatcher.dispatched >= len(sends), 3.0), control.calls
    finally:
        out.close()
        log = pd.stop()
    assert pd_errors(log) == [], log
    assert ("set_enabled", (True,)) in control.calls and ("set_hold", (True,)) in control.calls
    assert ("set_step_size", (0.25,)) in control.calls and ("reset", ()) in control.calls
    assert dispatcher.rejected_total == 0, dispatcher.counters()


def analysis(out: OscOut, echo: EchoListener, frame: np.ndarray, note: float) -> dict[str, float]:
    """Play `frame` at `note` (gate on) and return the echo helper's output analysis (medians)."""
    out.send_params(frame)
    out.send_note(note)
    out.send_gate(True)
    time.sleep(0.25)  # envelope attack, the analysis window (2048 samples) and sigmund~ settle
    start = len(echo.messages)
    assert wait_until(lambda: sum(m.address == "/echo/analysis" for m in echo.messages[start:]) >= 4, 2.0)
    rows = np.array([m.params for m in list(echo.messages)[start:] if m.address == "/echo/analysis"])
    env_db, diff_db, pitch_midi = np.median(rows, axis=0)
    ratio = 10 ** ((diff_db - env_db) / 20) / 2 if env_db > 0 else 0.0
    return {
        "rms_dbfs": float(env_db - 100),
        "centroid_hz": float(48000 / np.pi * np.arcsin(min(1.0, ratio))),
        "pitch_midi": float(pitch_midi),
    }


def test_serumlite_voice_follows_the_parameters(run_pd: Callable, echo: EchoListener) -> None:
    pd_port = free_udp_port()
    pd = run_pd({"serumlite.pd": serumlite_pd.build(pd_port, "127.0.0.1", 9), "echo.pd": echo_helper(echo.port)})
    out = OscOut(OscSettings(send_port=pd_port))

    def frame(**values: float) -> np.ndarray:
        x = default_vector()
        for name, value in values.items():
            x[PARAM_INDEX[name]] = value
        return x

    try:
        assert wait_until(lambda: out.send_params(default_vector()) or echo.last("/echo/params"), 5.0)
        sine = analysis(out, echo, frame(osc1_wave=0.0, filter_cutoff=1.0), 57.0)
        saw = analysis(out, echo, frame(osc1_wave=1 / 3, filter_cutoff=1.0), 57.0)
        saw_dark = analysis(out, echo, frame(osc1_wave=1 / 3, filter_cutoff=0.3), 57.0)
        octave_up = analysis(out, echo, frame(osc1_level=0.0, osc2_level=1.0, osc2_wave=0.0, osc2_semitones=0.75), 57.0)
        noise = analysis(out, echo, frame(osc1_level=0.0, noise_level=1.0, filter_cutoff=1.0), 57.0)
    finally:
        out.close()
        log = pd.stop()
    assert pd_errors(log) == [], log
    assert sine["pitch_midi"] == pytest.approx(57.0, abs=0.2) and sine["centroid_hz"] == pytest.approx(220, rel=0.05)
    assert -20 < sine["rms_dbfs"] < -3
    assert saw["pitch_midi"] == pytest.approx(57.0, abs=0.2) and saw["centroid_hz"] > 4 * sine["centroid_hz"]
    assert saw_dark["centroid_hz"] < 0.5 * saw["centroid_hz"]  # the table's log cutoff: 0.3 -> 211 Hz
    assert octave_up["pitch_midi"] == pytest.approx(69.0, abs=0.2)  # osc2 +12 semitones
    assert noise["centroid_hz"] > 5000 and noise["pitch_midi"] < 0  # sigmund~ finds no pitch in noise


def test_features_patch_sends_descriptors_to_the_dispatcher(run_pd: Callable, server) -> None:
    control, dispatcher, server_port = server
    pd = run_pd(
        {"serumlite_features.pd": features_pd.build("127.0.0.1", server_port)},
        sends=["sl-features-tone 1", "sl-features-tone-hz 440"],
    )

    def latest() -> list[float] | None:
        got = [args[0] for name, args in list(control.calls) if name == "set_external_features"]
        return got[-1].tolist() if len(got) > 10 else None  # past the first hops (window filling)

    try:
        assert wait_until(lambda: latest() is not None, 5.0), "no /agent/features from Pd"
    finally:
        log = pd.stop()
    assert pd_errors(log) == [], log
    values = dict(zip(PD_FEATURE_NAMES, latest(), strict=True))
    assert values["rms_db"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.3)  # a 0.5 sine
    assert values["centroid"] == pytest.approx(440.0, rel=0.03)
    assert values["pitch_hz"] == pytest.approx(440.0, rel=0.01)
    assert values["pitch_confidence"] == 1.0
    assert dispatcher.rejected_total == 0, dispatcher.counters()


def test_wekinator_mode_round_trip(run_pd: Callable, echo: EchoListener) -> None:
    """`/wek/outputs` from OscOut reach serumlite.pd's receive names; the features patch's
    `/wek/inputs` reach a Wekinator-mode Dispatcher on its own port."""
    control = Recorder()
    dispatcher = Dispatcher(control, OscSettings(format="wekinator"))  # type: ignore[arg-type]
    with OscServer(dispatcher, [("127.0.0.1", 0)]) as osc_server:
        wek_in_port = osc_server.addresses[0][1]
        native_port, wek_out_port = free_udp_ports(2)
        pd = run_pd(
            {
                "serumlite.pd": serumlite_pd.build(native_port, "127.0.0.1", 9, wekinator_port=wek_out_port),
                "serumlite_features.pd": features_pd.build("127.0.0.1", wek_in_port, address="/wek/inputs"),
                "echo.pd": echo_helper(echo.port),
            },
            sends=["sl-features-tone 1", "sl-features-tone-hz 330"],
        )
        out = OscOut(OscSettings(format="wekinator", wekinator_out_port=wek_out_port, send_port=native_port))
        frame = np.linspace(0, 1, N_PARAMS, dtype=np.float32)
        try:
            assert wait_until(lambda: out.send_params(frame) or echo.last("/echo/params") is not None, 5.0)
            assert wait_until(lambda: len(control.calls) > 5, 5.0), "no /wek/inputs from Pd"
        finally:
            out.close()
            log = pd.stop()
    assert pd_errors(log) == [], log
    np.testing.assert_array_equal(np.array(echo.last("/echo/params"), dtype=np.float32), frame)
    name, (values,) = control.calls[-1]
    assert name == "set_external_features" and values.shape == (len(PD_FEATURE_NAMES),)
    assert values[PD_FEATURE_NAMES.index("pitch_hz")] == pytest.approx(330.0, rel=0.01)
    assert dispatcher.rejected_total == 0, dispatcher.counters()
