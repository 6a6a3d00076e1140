"""Play an audio file through a controller block by block, as the live server does, and record it.

Input: mono audio at `features.sample_rate_hz`, a `Controller` (the trained agent through
`server.agent.LiveAgent`, or a baseline), settings (`synth.*` note/gate rules, `features.*`) and a
voice factory (default `synth.stream.StreamingVoice`). The block is the analysis hop, so one
block is one control tick (`tick_s = hop_length / sample_rate_hz`, the training tick).
Output: `Performance`: per tick the input's descriptors, the synth output's descriptors (both from
`features.stream.StreamingDescriptors`, the live extractor), the parameters the output block was
rendered with, note and gate; and the rendered output audio.

Per tick, in the live worker's order (`server.worker`): analyse the input block; render one
output block with the current parameters and analyse it (the agent's own descriptors); let the
note/gate follower react to the input; let the controller choose the next parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from features.names import DESCRIPTOR_NAMES, N_DESCRIPTORS
from server.worker import Voice  # the live worker's voice interface: evaluation plays the same way
from settings import Settings
from synth.note_gate import NoteGateFollower

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
    params: np.ndarray  # [T, 24]: the parameters output block t was rendered with
    notes_midi: np.ndarray  # [T]
    gates: np.ndarray  # [T] bool
    audio: np.ndarray  # [T * block] float32, the synth's output


def default_voice_factory(sample_rate_hz: int, block_size: int) -> Voice:
    from synth.stream import StreamingVoice

    return StreamingVoice(sample_rate_hz, block_size)


def perform(
    audio: np.ndarray,
    controller: Controller,
    start_params: np.ndarray,
    settings: Settings,
    voice_factory: Callable[[int, int], Any] | None = None,
) -> Performance:
    """Run the live loop offline over `audio` (mono float32 at `settings.features.sample_rate_hz`)."""
    from features.stream import StreamingDescriptors

    sr = settings.features.sample_rate_hz
    block = settings.features.hop_length
    n_ticks = len(audio) // block
    if n_ticks < 1:
        raise ValueError(f"audio of {len(audio)} frames is shorter than one block of {block} frames")
    tick_s = block / sr
    listen_in = StreamingDescriptors(settings.features, sr, block)
    listen_out = StreamingDescriptors(settings.features, sr, block)
    voice = (voice_factory or default_voice_factory)(sr, block)
    follower = NoteGateFollower(settings.synth, tick_s)
    params = np.asarray(start_params, dtype=np.float32).copy()
    controller.reset(params)
    voice.set_params(params)
    input_desc = np.zeros((n_ticks, N_DESCRIPTORS), dtype=np.float32)
    output_desc = np.zeros((n_ticks, N_DESCRIPTORS), dtype=np.float32)
    params_log = np.zeros((n_ticks, params.size), dtype=np.float32)
    notes = np.zeros(n_ticks, dtype=np.float32)
    gates = np.zeros(n_ticks, dtype=bool)
    out_audio = np.zeros(n_ticks * block, dtype=np.float32)
    for t in range(n_ticks):
        input_desc[t] = listen_in.process(audio[t * block : (t + 1) * block])
        out_block = out_audio[t * block : (t + 1) * block]
        params_log[t] = params
        voice.process(out_block)
        output_desc[t] = listen_out.process(out_block)
        d = input_desc[t]
        state = follower.update(float(d[_IDX_PITCH]), float(d[_IDX_CONF]), float(d[_IDX_LOUD]))
        if state.triggered:
            voice.note_on(state.note_midi)
        elif state.note_changed and state.gate:
            voice.set_note(state.note_midi)
        if state.released:
            voice.note_off()
        notes[t], gates[t] = state.note_midi, state.gate
        controller.step(output_desc[t], input_desc[t], params)
        voice.set_params(params)
    return Performance(tick_s, input_desc, output_desc, params_log, notes, gates, out_audio)


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
