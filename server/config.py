"""The `audio:`, `osc:` and `server:` sections of environment_settings.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class AudioSettings:
    input: str = "default"  # default | device name or index | FILE.wav | osc
    output_device: str = "default"  # device name or index; "none": no playback (the synth is only recorded)
    sample_rate_hz: int = 48000
    block_size: int = 512  # frames per audio block
    input_channel: int = 0  # which channel of the input device is heard
    fast: bool = False  # stream files as fast as possible instead of at real-time pace
    wake_worker: bool = True  # the input callback wakes the worker (one pipe byte per block); false: it polls
    callback_priority: int = 10  # SCHED_FIFO priority for the audio callbacks' threads (1..99); 0: leave them

    def __post_init__(self) -> None:
        if not 0 <= self.callback_priority <= 99:
            raise ValueError(f"callback_priority must be in 0..99 (0: off), got {self.callback_priority}")


@dataclass(frozen=True)
class OscSettings:
    listen_host: str = "127.0.0.1"
    listen_port: int = 9000
    send_host: str = "127.0.0.1"
    send_port: int = 9001
    format: Literal["native", "wekinator"] = "native"
    wekinator_out_port: int = 12000
    wekinator_in_port: int = 6448
    per_param: bool = False  # also send /serumlite/<param_name> per parameter
    feature_echo: bool = False  # echo the input descriptors as /agent/features
    allow: tuple[str, ...] = ()  # peers allowed when binding beyond loopback (empty: anyone on loopback)


@dataclass(frozen=True)
class ServerSettings:
    model: str = "models/default"
    output: Literal["osc", "synth", "both"] = "osc"
    step_size: float = 1.0  # scale of the per-tick parameter change, 0..1
    duration_s: float = 0.0  # 0: run until stopped
    record: str = ""  # WAV path for the internal synth's output ("" = none)
    stats_json: str = ""
    smoothing_s: float = 0.05  # one-pole smoothing of the sent/played parameter frame (0: none)
    control_tick_s: float = 0.0  # seconds between policy steps; 0: the model's tick_s (training's hop)
    plot: str = ""  # PNG of input vs synth descriptors over the run ("" = none)
    trace_csv: str = ""  # CSV of every control tick: descriptors, parameters, note, gate ("" = none)
    prepare_lead_s: float = 0.002  # warm the input analysis this long before a tick block is due (0: off)

    def __post_init__(self) -> None:
        if not 0.0 <= self.step_size <= 1.0:
            raise ValueError(f"step_size must be in 0..1, got {self.step_size}")
        if self.duration_s < 0 or self.smoothing_s < 0 or self.control_tick_s < 0 or self.prepare_lead_s < 0:
            raise ValueError("duration_s, smoothing_s, control_tick_s and prepare_lead_s must be >= 0")
