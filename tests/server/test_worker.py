"""The worker's control path: descriptors -> note/gate -> policy -> frame -> OSC, with a deterministic model
and doubles: parameters and the note / gate following the input, the control pace, hold / enable / manual
parameters / reset, step size, hot swap, external features, output smoothing, and parameters held while the
gate is closed. What a tick sends first and the worker thread's scheduling: `test_worker_latency.py`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from agents.policy import ModelError
from features.names import DESCRIPTOR_NAMES
from server.agent import LiveAgent
from server.control import GATE_INDEX, NOTE_INDEX, ControlState, smoothing_coefficient
from server.ring_buffer import RingBuffer
from synth.config import SynthSettings
from synth.params import PARAM_INDEX
from tests.server.worker_harness import BLOCK, CUT, SR, VOL, feed, make_worker


def test_parameters_follow_the_input_loudness(doubles: SimpleNamespace, follow_model: Path) -> None:
    worker, w = make_worker(doubles, follow_model, trace=True)
    feed(worker, doubles.sine(440.0, 1.0, SR, amplitude=0.9))  # loud: the synth (at 0.5) is quieter
    loud_volume = w.control.params_0to1[VOL]
    assert loud_volume > 0.85
    feed(worker, doubles.sine(440.0, 1.0, SR, amplitude=0.05))  # quiet: volume comes down
    assert w.control.params_0to1[VOL] < loud_volume - 0.3
    assert worker.stats.blocks == 2 * (SR // BLOCK) and worker.stats.control_ticks == worker.stats.blocks
    assert len(w.osc.params) == worker.stats.control_ticks
    assert worker.trace is not None and worker.trace.rows == worker.stats.control_ticks
    assert worker.stats.block_us.count == worker.stats.blocks


def test_note_and_gate_follow_the_input_and_go_out_over_osc(doubles: SimpleNamespace, follow_model: Path) -> None:
    worker, w = make_worker(doubles, follow_model)
    silence = np.zeros(BLOCK * 10, dtype=np.float32)
    feed(worker, silence)
    assert w.osc.gates == [] and worker._frame[GATE_INDEX] == 0.0
    feed(worker, doubles.sine(440.0, 0.3, SR))  # A4 -> MIDI 69 (the double's pitch is zero-crossing based)
    assert w.osc.gates == [True] and w.voice.note_ons == 1
    assert w.osc.notes[-1] == pytest.approx(69.0, abs=1.0) and worker._frame[NOTE_INDEX] == w.osc.notes[-1]
    feed(worker, silence)
    assert w.osc.gates == [True, False] and w.voice.note_offs == 1


def test_control_ticks_at_the_model_pace(doubles: SimpleNamespace, follow_model: Path) -> None:
    worker, _ = make_worker(doubles, follow_model, tick_s=3 * BLOCK / SR)
    feed(worker, doubles.sine(220.0, 0.5, SR))
    assert worker.stats.blocks == 46 and worker.stats.control_ticks == 16  # first block ticks, then every 3rd


def test_hold_enable_manual_param_and_reset(doubles: SimpleNamespace, follow_model: Path) -> None:
    worker, w = make_worker(doubles, follow_model)
    loud = doubles.sine(440.0, 0.2, SR, amplitude=0.9)
    ctl = w.control
    ctl.hold = True
    before = ctl.output_0to1.copy()
    feed(worker, loud)
    assert np.array_equal(ctl.output_0to1, before) and np.array_equal(w.osc.params[-1], before)
    ctl.hold = False
    ctl.enabled = False
    feed(worker, loud)
    assert ctl.params_0to1[VOL] == before[VOL]  # paused: the policy does not move anything
    ctl.enabled = True
    ctl.request_param(PARAM_INDEX["noise_level"], 0.9)
    ctl.request_param(VOL, 0.1)
    feed(worker, loud[:BLOCK])
    assert ctl.params_0to1[PARAM_INDEX["noise_level"]] == pytest.approx(0.9)  # not controlled: stays
    assert 0.1 < ctl.params_0to1[VOL] <= 0.1 + w.agent.delta_max + 1e-6  # controlled: the agent goes on from it
    ctl.request_reset()
    feed(worker, np.zeros(BLOCK, dtype=np.float32))
    noise = PARAM_INDEX["noise_level"]
    assert ctl.params_0to1[noise] == pytest.approx(w.agent.start_preset[noise])
    with pytest.raises(ValueError, match="outside 0..1"):
        ctl.request_param(VOL, 1.5)
    with pytest.raises(ValueError, match="step size"):
        ctl.set_step_size(-0.1)


def test_step_size_scales_the_moves(doubles: SimpleNamespace, follow_model: Path) -> None:
    moves = []
    for step in (1.0, 0.25):
        worker, w = make_worker(doubles, follow_model)
        w.control.set_step_size(step)
        start = w.control.params_0to1[VOL]
        feed(worker, doubles.sine(440.0, BLOCK / SR, SR, amplitude=0.9))
        moves.append(w.control.params_0to1[VOL] - start)
    assert moves[0] > 0 and moves[1] == pytest.approx(moves[0] / 4, rel=1e-4)


def test_hot_swap_takes_the_new_model_at_the_next_tick(
    doubles: SimpleNamespace, follow_model: Path, tmp_path: Path
) -> None:
    worker, w = make_worker(doubles, follow_model)
    inverse = doubles.write_follow_model(tmp_path / "inverse", gain=-20.0)
    feed(worker, doubles.sine(440.0, 0.1, SR, amplitude=0.9))
    rising = w.control.params_0to1[VOL]
    worker.swap_agent(LiveAgent.from_dir(inverse, DESCRIPTOR_NAMES))
    feed(worker, doubles.sine(440.0, 0.1, SR, amplitude=0.9))
    assert worker.agent.name == "inverse" and w.control.params_0to1[VOL] < rising


def test_external_features_drive_the_policy(doubles: SimpleNamespace, follow_model: Path) -> None:
    worker, w = make_worker(doubles, follow_model)
    # model order: loudness_db, centroid, pitch_hz, pitch_confidence
    for _ in range(10):
        worker.process_features(np.array([-3.0, 5000.0, 440.0, 1.0], dtype=np.float32))
    assert worker.stats.external_feature_frames == 10 and worker.stats.control_ticks == 10
    assert w.control.params_0to1[VOL] > 0.8 and w.control.params_0to1[CUT] > 0.8
    assert w.osc.gates == [True] and w.osc.notes[-1] == 69.0


def test_a_model_the_live_extractor_cannot_feed_is_refused(doubles: SimpleNamespace, tmp_path: Path) -> None:
    model = doubles.write_follow_model(tmp_path / "m")
    with pytest.raises(ModelError, match="not computed by the live extractor"):
        LiveAgent.from_dir(model, ("loudness_db",))
    with pytest.raises(ModelError, match="not found"):
        LiveAgent.from_dir(tmp_path / "missing", DESCRIPTOR_NAMES)


def test_output_smoothing_is_one_pole_and_hold_freezes_it() -> None:
    start = np.full(24, 0.5, dtype=np.float32)
    coef = smoothing_coefficient(0.05, 0.01)
    assert coef == pytest.approx(np.exp(-0.2)) and smoothing_coefficient(0.0, 0.01) == 0.0
    ctl = ControlState(start, smoothing_coef=coef)
    ctl.params_0to1[VOL] = 1.0
    ctl.update_output()
    assert ctl.output_0to1[VOL] == pytest.approx(1.0 - 0.5 * coef)
    ctl.hold = True
    frozen = ctl.output_0to1.copy()
    ctl.update_output()
    assert np.array_equal(ctl.output_0to1, frozen)
    ctl.hold = False
    for _ in range(200):
        ctl.update_output()
    assert ctl.output_0to1[VOL] == pytest.approx(1.0, abs=1e-4)
    ctl.params_0to1[PARAM_INDEX["unison_voices"]] = 0.4  # snapped parameters go out snapped
    ctl.update_output()
    assert ctl.output_0to1[PARAM_INDEX["unison_voices"]] * 6 == pytest.approx(
        round(ctl.output_0to1[PARAM_INDEX["unison_voices"]] * 6)
    )
    with pytest.raises(ValueError, match="preset: expected 24"):
        ctl.request_preset(np.zeros(3, dtype=np.float32))


@pytest.mark.parametrize("hold", [True, False])
def test_parameters_hold_while_the_gate_is_closed(doubles: SimpleNamespace, follow_model: Path, hold: bool) -> None:
    """`synth.hold_while_gate_closed`: in a rest the policy still runs but its moves are not applied, so
    the next note starts with the sound the last one ended with (as in evaluation and training)."""
    worker, w = make_worker(doubles, follow_model, synth=SynthSettings(hold_while_gate_closed=hold))
    feed(worker, doubles.sine(440.0, 0.3, SR, amplitude=0.9))  # a note: the volume follows it up
    assert worker._frame[GATE_INDEX] == 1.0
    feed(worker, np.zeros(2 * BLOCK, dtype=np.float32))  # the gate closes on the first silent tick
    assert worker._frame[GATE_INDEX] == 0.0
    rest_start = w.control.params_0to1.copy()
    # a quiet tail under the gate's threshold: the follow model, hearing its own silence, pushes the volume up
    feed(worker, doubles.sine(440.0, 20 * BLOCK / SR, SR, amplitude=0.0005))
    assert worker._frame[GATE_INDEX] == 0.0
    moved = float(np.abs(w.control.params_0to1 - rest_start).sum())
    assert moved == 0.0 if hold else moved > 0.05


def test_external_features_without_loudness_keep_the_gate_open(doubles: SimpleNamespace, tmp_path: Path) -> None:
    """`--input osc` with a model that has no `loudness_db` (e.g. Pd's four descriptors): the gate opens
    and stays open, so the synth sounds and the policy's moves apply."""
    from agents.policy import write_model_dir
    from synth.params import default_vector

    names = ["rms_db", "centroid", "pitch_hz", "pitch_confidence"]
    weights = np.zeros((1, 2 * len(names) + 1), dtype=np.float32)
    weights[0, len(names)] = 20.0  # master_volume up with the target's rms_db
    meta = {
        "task": "imitate", "algorithm": "hand-written", "controlled_params": ["master_volume"],
        "descriptor_names": names,
        "normalization": {
            n: {"low": lo, "high": hi} for n, lo, hi in zip(names, (-80, 0, 0, 0), (0, 8000, 2000, 1), strict=True)
        },
        "observation": {"history": 0}, "action": {"kind": "continuous", "delta_max": 0.05},
        "start_preset": [float(v) for v in default_vector()], "tick_s": BLOCK / SR,
    }  # fmt: skip
    model = write_model_dir(tmp_path / "level", meta, [(weights, np.zeros(1, dtype=np.float32))], output="tanh")
    worker, w = make_worker(doubles, model)
    start = w.control.params_0to1[VOL]
    for _ in range(5):
        worker.process_features(np.array([-6.0, 2000.0, 440.0, 1.0], dtype=np.float32))
    assert worker._frame[GATE_INDEX] == 1.0 and w.osc.gates == [True]
    assert w.control.params_0to1[VOL] > start + 0.1


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")
def test_the_worker_thread_does_not_preempt_the_audio_thread_that_wakes_it(
    doubles: SimpleNamespace, follow_model: Path
) -> None:
    """SCHED_BATCH: the input callback's wake-up must not hand the CPU to the worker mid-callback."""
    worker, _ = make_worker(doubles, follow_model, ring=RingBuffer(8 * BLOCK))
    worker.start()
    try:
        deadline = time.monotonic() + 5.0
        policy = None
        while time.monotonic() < deadline:  # (the thread sets its policy as it starts)
            policy = os.sched_getscheduler(worker._thread.native_id)  # type: ignore[union-attr]
            if policy == os.SCHED_BATCH:
                break
            time.sleep(0.01)
        assert policy == os.SCHED_BATCH
        assert os.sched_getscheduler(0) != os.SCHED_BATCH  # only the worker thread
    finally:
        worker.stop()
