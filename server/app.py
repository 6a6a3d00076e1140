"""`LiveServer`: wires input, worker, output, OSC and stats into the live loop; implements `ServerControl`.

Input: `Settings` (sections `audio`, `osc`, `server`, `synth`, `features`), an input spec
(`server.audio_io.parse_input`), and optionally factories for the descriptor extractor and the
streaming voice (tests pass doubles; the defaults are `features.stream.StreamingDescriptors` and
`synth.stream.StreamingVoice`).
Output: a running loop (`start`, `run`, `stop`); on stop, the stats JSON, the trace CSV and the
plot PNG where the settings ask for them. OSC control calls arrive on the OSC thread and never
touch the audio threads directly (see `server.control`).
"""

from __future__ import annotations

import gc
import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from features.names import DESCRIPTOR_NAMES
from server import rt_kernel as rt
from server.agent import LiveAgent
from server.audio_io import DeviceAudio, FileSource, InputSpec, Recorder, parse_device
from server.callbacks import InputCallback, OutputCallback
from server.control import ControlState, FrameExchange, smoothing_coefficient
from server.osc_io import OscOut, OscServer
from server.osc_protocol import Dispatcher
from server.ring_buffer import RingBuffer
from server.stats import LiveStats
from server.trace import Trace
from server.worker import Worker
from server.worker_parts import Extractor, Voice
from settings import Settings
from synth.note_gate import NoteGateFollower

log = logging.getLogger(__name__)

ExtractorFactory = Callable[[Settings, int, int], Extractor]  # (settings, sample_rate_hz, block_size)
VoiceFactory = Callable[[Settings, int, int], Voice]  # (settings, sample_rate_hz, max_block_size)
AudioLoader = Callable[[Path, int], np.ndarray]  # (path, sample_rate_hz) -> mono float32
INPUT_RING_BLOCKS = 64  # input ring capacity in blocks (~0.7 s at 48 kHz / 512)
RECORD_RING_S = 4.0  # recorder ring capacity in seconds (real time; the recorder drains it every 50 ms)
RECORD_RING_FAST_S = 30.0  # ... with --fast, where audio is produced many times faster than real time


def default_extractor(settings: Settings, sample_rate_hz: int, block_size: int) -> Extractor:
    from features.stream import StreamingDescriptors

    return StreamingDescriptors(settings.features, sample_rate_hz, block_size)


def default_voice(settings: Settings, sample_rate_hz: int, max_block_size: int) -> Voice:
    from synth.stream import StreamingVoice

    # The note glide is done by the note/gate follower (per tick), so the voice itself does not glide.
    return StreamingVoice(sample_rate_hz, max_block_size, param_smoothing_s=settings.synth.param_smoothing_s)


def default_loader(path: Path, sample_rate_hz: int) -> np.ndarray:
    from features.audio_io import load_audio

    audio, _info = load_audio(path, sample_rate_hz)
    return audio


class LiveServer:
    """The live loop. Construct (validates everything, opens nothing), `start()`, `run()`, `stop()`."""

    def __init__(
        self,
        settings: Settings,
        input_spec: InputSpec,
        *,
        make_extractor: ExtractorFactory = default_extractor,
        make_voice: VoiceFactory = default_voice,
        load_audio: AudioLoader = default_loader,
        sounddevice: Any = None,
    ) -> None:
        self.settings = settings
        self.input_spec = input_spec
        self._make_voice = make_voice
        audio, srv = settings.audio, settings.server
        self.sample_rate_hz = int(audio.sample_rate_hz)
        self.block_size = int(audio.block_size)
        if self.sample_rate_hz <= 0 or self.block_size <= 0:
            raise ValueError(
                f"audio.sample_rate_hz and audio.block_size must be > 0, got {self.sample_rate_hz}, {self.block_size}"
            )
        _check_combination(settings, input_spec)
        self.names = DESCRIPTOR_NAMES
        self.agent = LiveAgent.from_dir(srv.model, self.names)
        warn_smoothing(self.agent, srv.smoothing_s)
        self.tick_s = (
            srv.control_tick_s or self.agent.tick_s or (settings.features.hop_length / settings.features.sample_rate_hz)
        )
        self.stats_ = LiveStats(self.sample_rate_hz, self.block_size)
        self.control = ControlState(
            self.agent.start_preset,
            step_size=srv.step_size,
            smoothing_coef=smoothing_coefficient(srv.smoothing_s, self.tick_s),
        )
        self.exchange = FrameExchange()
        self.trace = Trace(self.names) if (srv.plot or srv.trace_csv) else None
        wants_osc = srv.output in ("osc", "both")
        wants_synth = srv.output in ("synth", "both")
        self.osc_out = OscOut(settings.osc) if wants_osc else None
        self.dispatcher = Dispatcher(self, settings.osc)
        self.osc_server = OscServer(self.dispatcher)
        self.ring = RingBuffer(INPUT_RING_BLOCKS * self.block_size) if input_spec.kind != "osc" else None
        self.worker = Worker(
            block_size=self.block_size,
            sample_rate_hz=self.sample_rate_hz,
            tick_s=self.tick_s,
            descriptor_names=self.names,
            input_features=make_extractor(settings, self.sample_rate_hz, self.block_size) if self.ring else None,
            self_voice=make_voice(settings, self.sample_rate_hz, self.block_size),
            self_features=make_extractor(settings, self.sample_rate_hz, self.block_size),
            follower=NoteGateFollower(settings.synth, self.tick_s),
            agent=self.agent,
            control=self.control,
            exchange=self.exchange,
            stats=self.stats_,
            ring=self.ring,
            osc=self.osc_out,
            feature_echo=settings.osc.feature_echo,
            trace=self.trace,
            ring_signals=self.ring is not None and audio.wake_worker,
            prepare_lead_s=min(srv.prepare_lead_s, 0.5 * self.block_size / self.sample_rate_hz),
        )
        self.record_ring: RingBuffer | None = None
        self.recorder: Recorder | None = None
        self.output_cb: OutputCallback | None = None
        if wants_synth:
            if srv.record:
                ring_s = RECORD_RING_FAST_S if audio.fast else RECORD_RING_S
                self.record_ring = RingBuffer(int(ring_s * self.sample_rate_hz))
                self.recorder = Recorder(srv.record, self.sample_rate_hz, self.record_ring)
            self.output_cb = OutputCallback(
                make_voice(settings, self.sample_rate_hz, self.block_size),
                self.exchange,
                self.stats_.output,
                self.block_size,
                record=self.record_ring,
            )
        self.input_cb = (
            InputCallback(
                self.ring, self.stats_.input, audio.input_channel, wake=self.worker.waker if audio.wake_worker else None
            )
            if self.ring
            else None
        )
        self.file_source: FileSource | None = None
        self.device: DeviceAudio | None = None
        fast = audio.fast
        output_device = audio.output_device.strip()
        clock_output = self.output_cb is not None and (fast or output_device == "none")
        if input_spec.kind == "file" and input_spec.path is not None and self.input_cb is not None:
            samples = load_audio(input_spec.path, self.sample_rate_hz)
            self.file_source = FileSource(
                samples,
                self.sample_rate_hz,
                self.block_size,
                self.input_cb,
                fast=fast,
                output_cb=self.output_cb if clock_output else None,
                wait_processed=self.worker.wait_blocks,  # (the input callback wakes the worker itself)
            )
        device_output = self.output_cb if (self.output_cb is not None and not clock_output) else None
        device_input = self.input_cb if input_spec.kind == "device" else None
        if device_input is not None or device_output is not None:
            self.device = DeviceAudio(
                sample_rate_hz=self.sample_rate_hz,
                block_size=self.block_size,
                stats=self.stats_,
                input_cb=device_input,
                input_device=input_spec.device,
                input_channels=audio.input_channel + 1,
                output_cb=device_output,
                output_device=parse_device(output_device),
                callback_priority=audio.callback_priority,
                sd=sounddevice,
            )
        self._stop_requested = threading.Event()
        self._started_at = 0.0
        self._stopped = False

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Open OSC, start the worker, the recorder, then the audio clock (device or file)."""
        sys.setswitchinterval(0.0005)  # the audio threads wait at most ~0.5 ms for the GIL
        self._warm_up()
        # Everything loaded so far (modules, models, numba dispatchers) lives for the whole run: move it
        # out of the collector's reach, so that a full collection never walks it while the loop runs.
        gc.collect()
        gc.freeze()
        self.osc_server.start()
        for host, port in self.osc_server.addresses:
            log.info("OSC control on %s:%d", host, port)
        self.worker.start()
        if self.recorder is not None:
            self.recorder.start()
        self._started_at = time.perf_counter()
        try:
            if self.device is not None:
                self.device.start()
            if self.file_source is not None:
                self.file_source.start()
        except Exception:
            self.stop()
            raise

    def _warm_up(self) -> None:
        """Run each voice and extractor once before any stream starts, so first-call costs (JIT
        compilation, lazy tables) never land in an audio callback or the first blocks."""
        scratch = np.zeros(self.block_size, dtype=np.float32)
        spare = self._make_voice(self.settings, self.sample_rate_hz, self.block_size)  # every code path, once
        spare.set_params(self.control.output_0to1)
        spare.note_on(60.0)
        spare.process(scratch)
        spare.set_note(62.0)
        spare.process(scratch)
        spare.note_off()
        spare.process(scratch)
        for voice in [self.worker.self_voice] + ([self.output_cb.voice] if self.output_cb is not None else []):
            voice.process(scratch)
        if self.output_cb is not None:
            self.output_cb.warm()  # the compiled output callback (compiled once per process, ~1 s)
        if self.input_cb is not None:
            rt.input_callback()  # the compiled input callback (from numba's cache)
        rt.warm()  # ring, frame exchange, histograms as Python calls them
        for extractor in (self.worker.input_features, self.worker.self_features):
            if extractor is not None:
                extractor.process(scratch)
                core = getattr(extractor, "process_core", None)  # optional, as in the worker (`Extractor`)
                if callable(core):  # the worker's split tick: the core now, the deferred rest after the send
                    core(scratch)  # (their kernel was the first block's ~10 ms, loaded from numba's cache)
                    extractor.complete()
        agent = self.worker.agent
        self.control.warm(agent.warm_action, agent.controlled, agent.delta_max)  # the control step's kernel

    def request_stop(self) -> None:
        """Ask `run` to return (signal handlers call this)."""
        self._stop_requested.set()

    def run(self, duration_s: float = 0.0) -> None:
        """Block until stopped: `request_stop`, the file ends, `duration_s` passes, or the worker fails."""
        deadline = self._started_at + duration_s if duration_s > 0 else math.inf
        while not self._stop_requested.wait(0.05):
            if time.perf_counter() >= deadline:
                return
            if self.file_source is not None and self.file_source.done.is_set():
                self.worker.wait_blocks(self.file_source.blocks_sent, 10.0)
                return
            if not self.worker.alive:
                return

    def stop(self) -> dict[str, Any]:
        """Stop everything (idempotent), write stats / trace / plot as configured; returns the stats."""
        if self._stopped:
            return self.stats()
        self._stopped = True
        if self.file_source is not None:
            self.file_source.stop()
        if self.device is not None:
            self.device.stop()
        self.worker.stop()
        if self.recorder is not None:
            self.recorder.stop()
        self.osc_server.stop()
        self.stats_.wall_s = time.perf_counter() - self._started_at if self._started_at else 0.0
        stats = self.stats()
        srv = self.settings.server
        if srv.stats_json:
            _write_json(Path(srv.stats_json), stats)
        if self.trace is not None:
            if srv.trace_csv:
                self.trace.write_csv(srv.trace_csv)
            if srv.plot:
                controlled = [str(n) for n in self.worker.agent.model.meta["controlled_params"]]
                self.trace.plot(srv.plot, controlled=controlled, title=self._plot_title())
        if self.osc_out is not None:
            self.osc_out.close()
        if self.worker.error is not None:
            raise RuntimeError(f"live worker failed: {self.worker.error}") from self.worker.error
        return stats

    def _plot_title(self) -> str:
        src = self.input_spec.path.name if self.input_spec.path else self.input_spec.kind
        return f"{src}: input vs synth ({self.worker.agent.name}, tick {self.tick_s * 1000:.0f} ms)"

    # --- ServerControl (called on the OSC thread) --------------------------------------------------
    def set_enabled(self, on: bool) -> None:
        self.control.enabled = bool(on)

    def set_hold(self, on: bool) -> None:
        self.control.hold = bool(on)

    def load_model(self, path: str) -> str:
        agent = LiveAgent.from_dir(path, self.names)  # loads here, on the OSC thread
        current = self.worker.agent
        if agent.n_descriptors != current.n_descriptors and self.input_spec.kind == "osc":
            raise ValueError(
                f"expects {agent.n_descriptors} external features, the running input sends {current.n_descriptors}"
            )
        warn_smoothing(agent, self.settings.server.smoothing_s)
        self.control.set_start_preset(agent.start_preset)
        self.worker.swap_agent(agent)
        self.stats_.models_loaded += 1
        return agent.name

    def set_step_size(self, step_0to1: float) -> None:
        self.control.set_step_size(step_0to1)

    def reset(self) -> None:
        self.control.request_reset()
        self.worker.request_history_reset()

    def set_param(self, index: int, value_0to1: float) -> None:
        self.control.request_param(index, value_0to1)

    def load_preset(self, path: str) -> None:
        from synth.presets import load_preset

        self.control.request_preset(load_preset(path).params_0to1)

    def set_external_features(self, values: np.ndarray) -> None:
        if self.input_spec.kind != "osc":
            raise ValueError("external features are used only with --input osc")
        expected = self.worker.agent.n_descriptors
        if values.shape != (expected,):
            raise ValueError(
                f"expected {expected} features ({', '.join(self.worker.agent.descriptor_names)}), got {values.shape[0]}"
            )
        self.worker.push_features(values)

    def stats(self) -> dict[str, object]:
        osc: dict[str, Any] = dict(self.dispatcher.counters())
        if self.osc_out is not None:
            osc.update(self.osc_out.counters())
        out = self.stats_.to_dict(osc)
        out["model"] = self.worker.agent.name
        out["tick_s"] = round(self.tick_s, 6)
        out["enabled"] = self.control.enabled
        out["hold"] = self.control.hold
        out["step_size"] = self.control.step_size
        if self.file_source is not None:
            out["file_late_blocks"] = self.file_source.late_blocks
        if self.recorder is not None:
            out["recorded_frames"] = self.recorder.frames_written
        if self.record_ring is not None:
            out["record_overruns"] = self.record_ring.overruns  # blocks missing from the WAV
        if self.device is not None:
            out["realtime_callback_threads"] = self.device.realtime_threads  # SCHED_FIFO (audio.callback_priority)
        return out


def warn_smoothing(agent: LiveAgent, smoothing_s: float) -> None:
    """Log one warning when `server.smoothing_s` differs from the smoothing the model was trained through:
    it still runs, but it steers a slightly different instrument from the one it learned on."""
    if math.isclose(agent.output_smoothing_s, smoothing_s, rel_tol=1e-6, abs_tol=1e-9):
        return
    log.warning(
        "model %s was trained with server.smoothing_s %g; this server smooths with %g (it follows less closely)",
        agent.name, agent.output_smoothing_s, smoothing_s,
    )  # fmt: skip


def _check_combination(settings: Settings, input_spec: InputSpec) -> None:
    """Refuse flag combinations that cannot work, before anything is loaded or opened."""
    srv, audio = settings.server, settings.audio
    wants_synth = srv.output in ("synth", "both")
    if srv.record and not wants_synth:
        raise ValueError("--record writes the internal synth's output: use --output synth or both")
    if audio.fast and input_spec.kind != "file":
        raise ValueError("--fast streams a file as fast as possible: it needs --input FILE")
    if wants_synth and audio.output_device.strip() == "none" and input_spec.kind != "file":
        raise ValueError("--output-device none plays nothing: with a device or OSC input use --output osc")
    if audio.input_channel < 0:
        raise ValueError(f"--channel must be >= 0, got {audio.input_channel}")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
