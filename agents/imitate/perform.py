"""Play an audio file through a controller block by block, as the live server does, and record it.

Input: mono audio at `features.sample_rate_hz`, a `Controller` (the trained agent through
`server.agent.LiveAgent`, or a baseline), settings (`synth.*` note/gate rules, `features.*`, the
output smoothing `server.smoothing_s`) and a
voice factory (default `synth.stream.StreamingVoice`). The block is the analysis hop, so one
block is one control tick (`tick_s = hop_length / sample_rate_hz`, the training tick).
Output: `Performance`: per tick the input's descriptors, the synth output's descriptors (both from
`features.stream.StreamingDescriptors`, the live extractor), the parameters the output block was
rendered with, note and gate; and the rendered output audio.

Per tick, in the live worker's order (`server.worker`): analyse the input block; render one
output block with the current parameters and analyse it (the agent's own descriptors); let the
note/gate follower react to the input; let the controller choose the next parameters, which the
voice then plays through the live server's output smoothing (`SynthLoop.set_params`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from features.names import DESCRIPTOR_NAMES, N_DESCRIPTORS
from server.control import ControlState, smoothing_coefficient
from server.worker_parts import Voice  # the live worker's voice interface: evaluation plays the same way
from settings import Settings
from synth.note_gate import NoteGateFollower
from synth.params import N_PARAMS

_IDX_PITCH = DESCRIPTOR_NAMES.index("pitch_hz")
_IDX_CONF = DESCRIPTOR_NAMES.index("pitch_confidence")
_IDX_LOUD = DESCRIPTOR_NAMES.index("loudness_db")


class Controller(Protocol):
    """Chooses the parameters of the next tick (in place in `params_0to1`, a [24] float32 array)."""

    def reset(self, params_0to1: np.ndarray) -> None: ...
    def step(self, agent_all: np.ndarray, target_all: np.ndarray, params_0to1: np.ndarray) -> None: ...


@dataclass(frozen=True)
class Performance:
    tick_s: float
    input_desc: np.ndarray  # [T, N_DESCRIPTORS]
    output_desc: np.ndarray  # [T, N_DESCRIPTORS]
    params: np.ndarray  # [T, 24]: the parameters output block t was rendered with (the played frame)
    notes_midi: np.ndarray  # [T]
    gates: np.ndarray  # [T] bool
    audio: np.ndarray  # [T * block] float32, the synth's output


def default_voice_factory(sample_rate_hz: int, block_size: int, *, param_smoothing_s: float = 0.02) -> Voice:
    """The live server's voice (`server.app.default_voice`): `synth.param_smoothing_s`, no glide (the
    note/gate follower glides the note)."""
    from synth.stream import StreamingVoice

    return StreamingVoice(sample_rate_hz, block_size, param_smoothing_s=param_smoothing_s)


class SynthLoop:
    """The synth side of one live tick, shared by `perform` and the imitation environment
    (`imitate.descriptor_source: stream`), so that training hears exactly what evaluation plays.

    Per tick, in the live worker's order: `render()` one block with the current parameters and
    analyse it with the streaming extractor (the agent's own descriptors); `follow(input_frame)`
    lets the note/gate follower react to the input's descriptors (note on/off for the next block);
    the controller then chooses new parameters and `set_params()` hands them to the voice.

    The voice plays the live server's output frame, not the controller's vector itself: one tick of
    `server.smoothing_s` one-pole smoothing toward it per `set_params` (the live `ControlState`'s
    own update, discrete parameters snapped), as the server sends and plays it; the controller keeps
    observing its own, unsmoothed vector, as the live agent does. `played` is that frame.
    """

    def __init__(self, settings: Settings, voice_factory: Callable[[int, int], Any] | None = None) -> None:
        from features.stream import StreamingDescriptors

        self.sample_rate_hz = settings.features.sample_rate_hz
        self.block_size = settings.features.hop_length
        self.tick_s = self.block_size / self.sample_rate_hz
        self._voice_factory = voice_factory
        self.listen = StreamingDescriptors(settings.features, self.sample_rate_hz, self.block_size)
        self.follower = NoteGateFollower(settings.synth, self.tick_s)
        self.voice: Any = None
        self.buffer = np.zeros(self.block_size, dtype=np.float32)
        self.note_midi = float(settings.synth.default_note)
        self.gate = False
        self.smoothing_coef = smoothing_coefficient(settings.server.smoothing_s, self.tick_s)
        self.param_smoothing_s = settings.synth.param_smoothing_s
        self.control = ControlState(np.zeros(N_PARAMS, dtype=np.float32), smoothing_coef=self.smoothing_coef)

    def reset(self, params_0to1: np.ndarray) -> None:
        """A fresh voice (silent, at `params_0to1`), extractor and follower."""
        if self._voice_factory is not None:
            self.voice = self._voice_factory(self.sample_rate_hz, self.block_size)
        else:
            self.voice = default_voice_factory(
                self.sample_rate_hz, self.block_size, param_smoothing_s=self.param_smoothing_s
            )
        self.listen.reset()
        self.follower.reset()
        self.note_midi = float(self.follower.state.note_midi)
        self.gate = False
        self.control = ControlState(params_0to1, smoothing_coef=self.smoothing_coef)
        self.voice.set_params(self.played)

    def render(self, out: np.ndarray | None = None) -> np.ndarray:
        """Render the next block into `out` (default: an internal buffer) and return its descriptors
        (the extractor's float32 [N_DESCRIPTORS] buffer, overwritten by the next call)."""
        block = self.buffer if out is None else out
        self.voice.process(block)
        return self.listen.process(block)

    def follow(self, input_frame: np.ndarray) -> None:
        """Let the note/gate follower react to one input descriptor frame (full `DESCRIPTOR_NAMES` order)."""
        d = input_frame
        state = self.follower.update(float(d[_IDX_PITCH]), float(d[_IDX_CONF]), float(d[_IDX_LOUD]))
        if state.triggered:
            self.voice.note_on(state.note_midi)
        elif state.note_changed and state.gate:
            self.voice.set_note(state.note_midi)
        if state.released:
            self.voice.note_off()
        self.note_midi, self.gate = float(state.note_midi), bool(state.gate)

    @property
    def played(self) -> np.ndarray:
        """The frame the voice plays (the live control's output, updated in place)."""
        return self.control.output_0to1

    def set_params(self, params_0to1: np.ndarray) -> None:
        """The controller's new vector: the played frame moves one smoothing tick toward it."""
        np.copyto(self.control.params_0to1, params_0to1)
        self.control.update_output()
        self.voice.set_params(self.played)


def perform(
    audio: np.ndarray,
    controller: Controller,
    start_params: np.ndarray,
    settings: Settings,
    voice_factory: Callable[[int, int], Any] | None = None,
) -> Performance:
    """Run the live loop offline over `audio` (mono float32 at `settings.features.sample_rate_hz`)."""
    from features.stream import StreamingDescriptors

    loop = SynthLoop(settings, voice_factory)
    sr, block = loop.sample_rate_hz, loop.block_size
    n_ticks = len(audio) // block
    if n_ticks < 1:
        raise ValueError(f"audio of {len(audio)} frames is shorter than one block of {block} frames")
    listen_in = StreamingDescriptors(settings.features, sr, block)
    params = np.asarray(start_params, dtype=np.float32).copy()
    held = params.copy()
    hold_closed = settings.synth.hold_while_gate_closed
    controller.reset(params)
    loop.reset(params)
    input_desc = np.zeros((n_ticks, N_DESCRIPTORS), dtype=np.float32)
    output_desc = np.zeros((n_ticks, N_DESCRIPTORS), dtype=np.float32)
    params_log = np.zeros((n_ticks, params.size), dtype=np.float32)
    notes = np.zeros(n_ticks, dtype=np.float32)
    gates = np.zeros(n_ticks, dtype=bool)
    out_audio = np.zeros(n_ticks * block, dtype=np.float32)
    for t in range(n_ticks):
        input_desc[t] = listen_in.process(audio[t * block : (t + 1) * block])
        params_log[t] = loop.played
        output_desc[t] = loop.render(out_audio[t * block : (t + 1) * block])
        loop.follow(input_desc[t])
        notes[t], gates[t] = loop.note_midi, loop.gate
        np.copyto(held, params)
        controller.step(output_desc[t], input_desc[t], params)
        if hold_closed and not loop.gate:
            np.copyto(params, held)  # a rest: the controller ran (its state moves on, as on stage), no move
        loop.set_params(params)
    return Performance(loop.tick_s, input_desc, output_desc, params_log, notes, gates, out_audio)


# -- controllers ---------------------------------------------------------------------------------


class AgentController:
    """The trained model, through the live server's own `LiveAgent` (same observation, same policy)."""

    def __init__(self, live_agent: Any, step_size: float = 1.0) -> None:
        self.agent = live_agent
        self.scale = float(live_agent.delta_max) * float(step_size)

    def reset(self, params_0to1: np.ndarray) -> None:
        self.agent.reset()

    def step(self, agent_all: np.ndarray, target_all: np.ndarray, params_0to1: np.ndarray) -> None:
        action = self.agent.act(agent_all, target_all, params_0to1)
        params_0to1[self.agent.controlled] += action * self.scale
        np.clip(params_0to1, 0.0, 1.0, out=params_0to1)


class RandomController:
    """Uniform random deltas in [-delta_max, delta_max] on the controlled parameters (seeded)."""

    def __init__(self, controlled: tuple[int, ...], delta_max: float, seed: int) -> None:
        self.controlled = np.asarray(controlled, dtype=np.intp)
        self.delta_max = float(delta_max)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(self, params_0to1: np.ndarray) -> None:
        self.rng = np.random.default_rng(self.seed)

    def step(self, agent_all: np.ndarray, target_all: np.ndarray, params_0to1: np.ndarray) -> None:
        params_0to1[self.controlled] += self.rng.uniform(-1.0, 1.0, self.controlled.size) * self.delta_max
        np.clip(params_0to1, 0.0, 1.0, out=params_0to1)


class StaticController:
    """One preset for the whole file."""

    def __init__(self, preset_0to1: np.ndarray) -> None:
        self.preset = np.asarray(preset_0to1, dtype=np.float32)

    def reset(self, params_0to1: np.ndarray) -> None:
        params_0to1[:] = self.preset

    def step(self, agent_all: np.ndarray, target_all: np.ndarray, params_0to1: np.ndarray) -> None:
        params_0to1[:] = self.preset
