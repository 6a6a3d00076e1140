"""Builds a `Worker` for the worker tests (`test_worker.py`, `test_worker_latency.py`): the real control
path (`LiveAgent`, `ControlState`, `NoteGateFollower`, stats, trace) around the doubles of `conftest.py`
(pass the `doubles` fixture), and `feed` to run audio through it block by block."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from features.names import DESCRIPTOR_NAMES
from server.agent import LiveAgent
from server.control import ControlState, FrameExchange
from server.ring_buffer import RingBuffer
from server.stats import LiveStats
from server.trace import Trace
from server.worker import Worker
from synth.config import SynthSettings
from synth.note_gate import NoteGateFollower
from synth.params import PARAM_INDEX

SR, BLOCK = 48000, 512
VOL, CUT = PARAM_INDEX["master_volume"], PARAM_INDEX["filter_cutoff"]


def make_worker(
    doubles: SimpleNamespace,
    model_dir: Path,
    *,
    tick_s: float = BLOCK / SR,
    ring: RingBuffer | None = None,
    synth: SynthSettings | None = None,
    trace: bool = False,
    input_features: object | None = None,
) -> tuple[Worker, SimpleNamespace]:
    agent = LiveAgent.from_dir(model_dir, DESCRIPTOR_NAMES)
    osc = doubles.RecordingOsc()
    voice = doubles.FakeVoice(SR, BLOCK)
    control = ControlState(agent.start_preset)
    worker = Worker(
        block_size=BLOCK,
        sample_rate_hz=SR,
        tick_s=tick_s,
        descriptor_names=DESCRIPTOR_NAMES,
        input_features=input_features or doubles.FakeExtractor(SR),
        self_voice=voice,
        self_features=doubles.FakeExtractor(SR),
        follower=NoteGateFollower(synth or SynthSettings(gate="follow", note="follow"), tick_s),
        agent=agent,
        control=control,
        exchange=FrameExchange(),
        stats=LiveStats(SR, BLOCK),
        ring=ring,
        osc=osc,
        trace=Trace(DESCRIPTOR_NAMES) if trace else None,
    )
    return worker, SimpleNamespace(osc=osc, voice=voice, control=control, agent=agent)


def feed(worker: Worker, audio: np.ndarray) -> None:
    for i in range(len(audio) // BLOCK):
        worker.process_block(audio[i * BLOCK : (i + 1) * BLOCK])
