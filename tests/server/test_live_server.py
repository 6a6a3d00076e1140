"""LiveServer end to end in-process (file input through the device code path, real OSC sockets) with
test doubles for the extractor and the voice, plus the CLI's error handling."""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message import OscMessage

from server.app import LiveServer
from server.audio_io import parse_input
from server.osc_protocol import encode_message
from settings import Settings, with_overrides
from synth.params import PARAM_INDEX

SR, BLOCK = 48000, 512
REPO = Path(__file__).resolve().parents[2]


def settings_for(model: Path, tmp: Path, **extra: object) -> Settings:
    overrides: dict[str, object] = {
        "server.model": str(model),
        "server.output": "both",
        "audio.sample_rate_hz": SR,
        "audio.block_size": BLOCK,
        "audio.output_device": "none",
        "osc.listen_port": 0,
        "osc.send_port": 9,  # discard: nobody listens
        "server.stats_json": str(tmp / "stats.json"),
        "server.record": str(tmp / "synth.wav"),
        "server.plot": str(tmp / "plot.png"),
        "server.trace_csv": str(tmp / "trace.csv"),
    }
    overrides.update(extra)
    return with_overrides(Settings(), overrides)


def make_server(doubles: SimpleNamespace, settings: Settings, wav: Path) -> LiveServer:
    def load(path: Path, sr: int) -> np.ndarray:
        audio, file_sr = sf.read(str(path), dtype="float32")
        assert file_sr == sr
        return audio

    return LiveServer(
        settings,
        parse_input(str(wav)),
        make_extractor=lambda s, sr, block: doubles.FakeExtractor(sr),
        make_voice=lambda s, sr, block: doubles.FakeVoice(sr, block),
        load_audio=load,
    )


@pytest.fixture
def phrase(tmp_path: Path, doubles: SimpleNamespace) -> Path:
    """0.3 s silence, 1 s of A4 (loud), 0.3 s silence."""
    gap = np.zeros(int(0.3 * SR), dtype=np.float32)
    audio = np.concatenate([gap, doubles.sine(440.0, 1.0, SR, amplitude=0.8), gap])
    path = tmp_path / "phrase.wav"
    sf.write(str(path), audio, SR)
    return path


def test_file_fast_run_writes_stats_wav_plot_and_trace(
    doubles: SimpleNamespace, follow_model: Path, phrase: Path, tmp_path: Path
) -> None:
    settings = settings_for(follow_model, tmp_path, **{"audio.fast": True})
    server = make_server(doubles, settings, phrase)
    server.start()
    server.run()
    stats = server.stop()
    n_blocks = -(-int(1.6 * SR) // BLOCK)
    on_disk = json.loads((tmp_path / "stats.json").read_text())
    assert on_disk["blocks"] == stats["blocks"] == n_blocks
    assert on_disk["sample_rate"] == SR and on_disk["block_size"] == BLOCK and on_disk["xruns"] == 0
    assert on_disk["control_ticks"] > 0 and on_disk["osc_sent"] >= on_disk["control_ticks"]
    assert 0 < on_disk["block_us"]["p50"] <= on_disk["block_us"]["p99"] <= on_disk["block_us"]["max"]
    synth, sr = sf.read(str(tmp_path / "synth.wav"), dtype="float32")
    assert sr == SR and len(synth) == n_blocks * BLOCK  # fast mode: every block played, none dropped
    sounding = synth[int(0.5 * SR) : int(1.2 * SR)]
    assert np.sqrt(np.mean(sounding**2)) > 0.05  # the gate opened on the tone
    assert np.abs(synth[: int(0.2 * SR)]).max() == 0.0  # and not before
    zero_crossings = np.count_nonzero(np.diff(np.signbit(sounding)))
    assert zero_crossings / 2 / (len(sounding) / SR) == pytest.approx(440.0, rel=0.02)  # the note followed A4
    assert (tmp_path / "plot.png").stat().st_size > 10_000
    header = (tmp_path / "trace.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["time_s", "in_loudness_db"] and "master_volume" in header


def test_file_fast_is_deterministic(doubles: SimpleNamespace, follow_model: Path, phrase: Path, tmp_path: Path) -> None:
    """Two runs give the same synth output, and so does a run whose worker polls (audio.wake_worker false)."""
    outs = []
    for run, wake in (("a", True), ("b", True), ("polling", False)):
        d = tmp_path / run
        settings = settings_for(follow_model, d, **{"audio.fast": True, "audio.wake_worker": wake})
        server = make_server(doubles, settings, phrase)
        assert server.worker.ring_signals is wake and server.input_cb is not None
        assert (server.input_cb.wake is server.worker.waker) if wake else server.input_cb.wake is None
        server.start()
        server.run()
        server.stop()
        outs.append(sf.read(str(d / "synth.wav"), dtype="float32")[0])
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])


def _osc(sock: socket.socket, port: int, address: str, *args: object) -> OscMessage | None:
    sock.sendto(encode_message(address, args), ("127.0.0.1", port))
    try:
        data, _ = sock.recvfrom(65535)
    except TimeoutError:
        return None
    return OscMessage(data)


def test_osc_control_while_running_at_real_time_pace(
    doubles: SimpleNamespace, follow_model: Path, phrase: Path, tmp_path: Path
) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.2)
    settings = settings_for(follow_model, tmp_path, **{"osc.send_port": listener.getsockname()[1]})
    server = make_server(doubles, settings, phrase)
    ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ctl.settimeout(2.0)
    server.start()
    try:
        port = server.osc_server.addresses[0][1]
        assert _osc(ctl, port, "/server/ping", 7).params == [7]
        other = doubles.write_follow_model(tmp_path / "second")
        reply = _osc(ctl, port, "/agent/model", str(other))
        assert reply.address == "/agent/model/loaded" and reply.params == ["second"]
        reply = _osc(ctl, port, "/agent/model", str(tmp_path / "nope"))
        assert reply.address == "/agent/error" and "not found" in reply.params[0]
        ctl.sendto(encode_message("/agent/hold", [1]), ("127.0.0.1", port))
        ctl.sendto(encode_message("/synth/param/noise_level", [0.75]), ("127.0.0.1", port))
        ctl.sendto(b"garbage", ("127.0.0.1", port))
        deadline = time.monotonic() + 3.0
        last = None
        while time.monotonic() < deadline:
            try:
                data, _ = listener.recvfrom(65535)
            except TimeoutError:
                continue
            msg = OscMessage(data)
            if msg.address == "/serumlite/params":
                last = msg.params
                if abs(last[PARAM_INDEX["noise_level"]] - 0.75) < 1e-6:
                    break
        assert last is not None and last[PARAM_INDEX["noise_level"]] == pytest.approx(0.75)
        stats = _osc(ctl, port, "/server/stats")
        flat = dict(zip(stats.params[::2], stats.params[1::2], strict=True))
        assert flat["osc_rejected"] >= 2 and flat["model"] == "second" and flat["hold"] == 1
    finally:
        server.request_stop()
        server.stop()
        ctl.close()
        listener.close()
    assert server.stats_.models_loaded == 1


def test_external_features_mode(doubles: SimpleNamespace, follow_model: Path, tmp_path: Path) -> None:
    settings = settings_for(follow_model, tmp_path, **{"server.output": "osc", "server.record": ""})
    server = LiveServer(
        settings,
        parse_input("osc"),
        make_extractor=lambda s, sr, block: doubles.FakeExtractor(sr),
        make_voice=lambda s, sr, block: doubles.FakeVoice(sr, block),
    )
    with pytest.raises(ValueError, match="expected 4 features"):
        server.set_external_features(np.zeros(3, dtype=np.float32))
    server.start()
    try:
        for _ in range(5):
            server.set_external_features(np.array([-3.0, 5000.0, 440.0, 1.0], dtype=np.float32))
            time.sleep(0.02)
        for _ in range(100):
            if server.stats_.external_feature_frames == 5:
                break
            time.sleep(0.02)
    finally:
        stats = server.stop()
    assert stats["external_feature_frames"] == 5 and stats["control_ticks"] == 5


def test_bad_settings_combinations_are_refused(doubles: SimpleNamespace, follow_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--record"):
        LiveServer(settings_for(follow_model, tmp_path, **{"server.output": "osc"}), parse_input("osc"))
    with pytest.raises(ValueError, match="needs --input FILE"):
        LiveServer(settings_for(follow_model, tmp_path, **{"audio.fast": True}), parse_input("osc"))
    with pytest.raises(ValueError, match="file not found"):
        parse_input(str(tmp_path / "missing.wav"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "live_server.py"), *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )


def test_cli_help_and_one_line_errors(follow_model: Path, tmp_path: Path) -> None:
    assert _cli("--help").returncode == 0
    bad_model = _cli("--model", str(tmp_path / "nope"), "--input", "osc")
    assert bad_model.returncode == 2 and bad_model.stderr.strip().count("\n") == 0
    assert "model directory not found" in bad_model.stderr
    missing = _cli("--model", str(follow_model), "--input", str(tmp_path / "x.wav"))
    assert missing.returncode == 2 and "file not found" in missing.stderr
    bad_step = _cli("--model", str(follow_model), "--input", "osc", "--step-size", "2")
    assert bad_step.returncode == 2 and "step_size" in bad_step.stderr


def test_sigint_stops_cleanly_and_writes_stats(follow_model: Path, tmp_path: Path) -> None:
    """The real entry point (real extractor and voice) in OSC-input mode, stopped by SIGINT."""
    stats_path = tmp_path / "stats.json"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "live_server.py"), "--model", str(follow_model), "--input", "osc",
         "--osc-port", "0", "--osc-send-port", "9", "--stats-json", str(stats_path)],
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        port = 0
        for _ in range(50):
            line = proc.stderr.readline()
            if "OSC control on" in line:
                port = int(line.rsplit(":", 1)[1])
                break
        assert port, "the server never said where OSC listens"
        ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ctl.settimeout(10.0)
        for _ in range(3):  # spaced: the worker plays the latest frame, an older unplayed one is superseded
            ctl.sendto(encode_message("/agent/features", [-20.0, 1500.0, 220.0, 0.9]), ("127.0.0.1", port))
            time.sleep(0.2)
        ctl.sendto(encode_message("/agent/features", [1.0]), ("127.0.0.1", port))  # wrong count: rejected
        assert _osc(ctl, port, "/server/ping").address == "/server/pong"
        ctl.close()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    stats = json.loads(stats_path.read_text())
    assert stats["external_frames_received"] == 3
    assert stats["external_feature_frames"] == 3 and stats["control_ticks"] == 3
    assert stats["osc_rejected"] == 1 and stats["osc_sent"] >= 3


def test_real_components_file_fast_is_deterministic_and_follows_the_pitch(
    doubles: SimpleNamespace, phrase: Path, tmp_path: Path
) -> None:
    """The default factories (features.stream, synth.stream, features.audio_io) end to end, twice."""
    follow_model = doubles.write_follow_model(tmp_path / "volume_only", cutoff_gain=0.0)
    outs = []
    for run in ("a", "b"):
        d = tmp_path / run
        server = LiveServer(settings_for(follow_model, d, **{"audio.fast": True}), parse_input(str(phrase)))
        server.start()
        server.run()
        stats = server.stop()
        assert stats["blocks"] == -(-int(1.6 * SR) // BLOCK) and stats["xruns"] == 0
        outs.append(sf.read(str(d / "synth.wav"), dtype="float32")[0])
    assert np.array_equal(outs[0], outs[1])
    rows = (tmp_path / "a" / "trace.csv").read_text().splitlines()
    header = rows[0].split(",")
    notes = [float(r.split(",")[header.index("note_midi")]) for r in rows[1:]]
    gates = [float(r.split(",")[header.index("gate")]) for r in rows[1:]]
    assert 69.0 in notes and max(gates) == 1.0  # A4 heard through the real extractor, the gate opened
    sounding = outs[0][int(0.6 * SR) : int(1.2 * SR)]
    assert np.sqrt(np.mean(sounding**2)) > 0.01


def test_model_hot_swaps_cause_no_dropout(
    doubles: SimpleNamespace, follow_model: Path, phrase: Path, tmp_path: Path
) -> None:
    """Swap models 10 times while the tone plays at real-time pace: the recorded synth never goes silent."""
    models = [doubles.write_follow_model(tmp_path / f"m{i}", gain=10.0 + i) for i in range(2)]
    server = make_server(doubles, settings_for(follow_model, tmp_path), phrase)
    server.start()
    try:
        time.sleep(0.6)  # into the tone (0.3 s .. 1.3 s)
        names = [server.load_model(str(models[i % 2])) for i in range(10)]
        server.run()
    finally:
        stats = server.stop()
    assert names[-1] == "m1" and stats["models_loaded"] == 10 and stats["model"] == "m1"
    synth, _ = sf.read(str(tmp_path / "synth.wav"), dtype="float32")
    sounding = np.abs(synth[int(0.45 * SR) : int(1.25 * SR)])
    frames = sounding[: len(sounding) // 240 * 240].reshape(-1, 240).max(axis=1)  # 5 ms windows
    assert frames.min() > 0.01, "a silent gap while models were swapped"


def test_a_model_trained_through_other_smoothing_gets_one_warning(
    doubles: SimpleNamespace, phrase: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`server.smoothing_s` differing from the model's `output_smoothing_s` (absent: trained without) is
    named in one warning, at start and on a hot swap; a matching model loads silently; a bad value is refused."""
    matching = doubles.write_follow_model(tmp_path / "s005", output_smoothing_s=0.05)
    plain = doubles.write_follow_model(tmp_path / "plain")
    settings = settings_for(matching, tmp_path, **{"server.output": "synth"})  # built, never started: no sockets
    assert settings.server.smoothing_s == 0.05

    def warnings() -> list[str]:
        messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        return [m for m in messages if "smoothing" in m]

    with caplog.at_level(logging.WARNING, logger="server.app"):
        server = make_server(doubles, settings, phrase)
        assert warnings() == []
        server.load_model(str(plain))
        assert len(warnings()) == 1 and "plain" in warnings()[0] and "smoothing_s 0;" in warnings()[0]
        server.load_model(str(matching))
        assert len(warnings()) == 1
        make_server(doubles, settings_for(plain, tmp_path, **{"server.output": "synth"}), phrase)
        assert len(warnings()) == 2
    bad = doubles.write_follow_model(tmp_path / "bad", output_smoothing_s=-1.0)
    with pytest.raises(ValueError, match="output_smoothing_s must be a number >= 0"):
        make_server(doubles, settings_for(bad, tmp_path, **{"server.output": "synth"}), phrase)
