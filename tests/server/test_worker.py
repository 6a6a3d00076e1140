"""The worker: descriptors -> note/gate -> policy -> frame -> OSC, with a deterministic model and doubles."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from agents.policy import ModelError
from features.names import DESCRIPTOR_NAMES
from server.agent import LiveAgent
from server.control import GATE_INDEX, NOTE_INDEX, ControlState, FrameExchange, smoothing_coefficient
from server.ring_buffer import RingBuffer
from server.stats import LiveStats
from server.trace import Trace
from server.worker import IDLE_WAIT_S, Worker
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


def test_worker_thread_reads_the_ring_and_external_features(doubles: SimpleNamespace, follow_model: Path) -> None:
    ring = RingBuffer(64 * BLOCK)
    worker, w = make_worker(doubles, follow_model, ring=ring)
    worker.start()
    try:
        ring.write(doubles.sine(440.0, 20 * BLOCK / SR, SR))
        assert worker.wait_blocks(20, 5.0)
        assert len(w.osc.params) == 20
        w.control.request_param(VOL, 0.123)  # idle: commands still reach OSC
        for _ in range(100):
            if abs(w.osc.params[-1][VOL] - 0.123) < 1e-6:
                break
            worker.waker.wait(0.01)
        assert w.osc.params[-1][VOL] == pytest.approx(0.123)
    finally:
        worker.stop()
    assert not worker.alive and worker.error is None


def test_a_signalling_ring_lets_the_worker_sleep_until_woken(doubles: SimpleNamespace, follow_model: Path) -> None:
    worker, _w = make_worker(doubles, follow_model, ring=RingBuffer(64 * BLOCK))
    assert worker._idle_wait_s() <= 0.75 * BLOCK / SR  # no signal: it polls near the next block
    worker.ring_signals = True  # the app's input callback writes to worker.waker after each block
    assert worker._idle_wait_s() == IDLE_WAIT_S


def test_the_tick_sends_before_the_self_voice_renders(doubles: SimpleNamespace, follow_model: Path) -> None:
    """Latency: on the tick block only the input analysis and the policy precede the OSC message;
    the self voice then renders that block with the parameters just sent (as training renders after acting):
    right away when every block ticks, else on the next block (the tick block does nothing else)."""
    for tick_blocks in (1, 3):
        worker, w = make_worker(doubles, follow_model, tick_s=tick_blocks * BLOCK / SR)
        events: list[str] = []

        def send(frame: np.ndarray, log: list[str] = events, inner: object = w.osc.send_params) -> None:
            log.append("send")
            inner(frame)  # type: ignore[operator]

        def render(out: np.ndarray, log: list[str] = events, voice: object = w.voice) -> None:
            log.append(f"render {voice.params[VOL]:.6f}")  # type: ignore[attr-defined]
            type(voice).process(voice, out)

        w.osc.send_params, w.voice.process = send, render
        renders_per_block = []
        for _ in range(7):
            before = len(events)
            worker.process_block(doubles.sine(440.0, BLOCK / SR, SR, amplitude=0.9))
            renders_per_block.append(sum(e.startswith("render") for e in events[before:]))
        sends = [i for i, e in enumerate(events) if e == "send"]
        assert len(sends) == (7 if tick_blocks == 1 else 3)  # blocks 0, 2, 5 (the first block ticks)
        for i in sends:  # the render right after a send uses the parameters sent
            assert events[i + 1] == f"render {w.osc.params[sends.index(i)][VOL]:.6f}"
        # every block's self audio is rendered once; with ticks 2-3 blocks apart, a tick block renders nothing
        assert renders_per_block == ([1] * 7 if tick_blocks == 1 else [0, 2, 0, 2, 1, 0, 2])


def test_block_timing_separates_tick_blocks_and_cpu_time(doubles: SimpleNamespace, follow_model: Path) -> None:
    worker, _w = make_worker(doubles, follow_model, tick_s=3 * BLOCK / SR)
    feed(worker, doubles.sine(440.0, 9 * BLOCK / SR, SR, amplitude=0.9))
    stats = worker.stats.to_dict()
    assert worker.stats.block_us.count == worker.stats.block_cpu_us.count == 9
    assert worker.stats.tick_block_us.count == worker.stats.control_ticks == 4  # blocks 0, 2, 5, 8
    assert stats["block_cpu_us"]["max"] > 0 and 0 < stats["tick_block_us"]["p50"] <= stats["block_us"]["max"]


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


def test_warm_up_runs_once_before_each_tick_block_and_changes_nothing(
    doubles: SimpleNamespace, follow_model: Path
) -> None:
    """prepare_lead_s: the worker wakes before a tick block is due and warms the input analysis and the
    policy (real-time paced blocks, ticks 3 blocks apart); the parameters sent are those of a run without it."""
    block_s = BLOCK / SR
    sent = []
    warm_log: list[list[str]] = []
    for lead_s in (0.0, 0.004):
        ring = RingBuffer(64 * BLOCK)
        worker, w = make_worker(doubles, follow_model, tick_s=3 * block_s, ring=ring)
        worker.ring_signals = True
        worker.prepare_lead_s = lead_s
        events: list[str] = []
        extractor = worker.input_features
        assert extractor is not None
        extractor.warm = lambda log=events: log.append("warm")  # the double has no warm(): give it one
        worker._warm = extractor.warm if lead_s > 0 else None
        inner_process = extractor.process

        def process(block: np.ndarray, log: list[str] = events, inner: object = inner_process) -> np.ndarray:
            log.append("analyse")  # the input is analysed on tick blocks only
            return inner(block)  # type: ignore[operator]

        extractor.process = process
        agent_warms = []
        inner_warm = w.agent.warm
        w.agent.warm = lambda *a, log=agent_warms, inner=inner_warm: (log.append(1), inner(*a))
        audio = doubles.sine(440.0, 13 * block_s, SR, amplitude=0.8)
        worker.start()
        try:
            for i in range(13):
                ring.write(audio[i * BLOCK : (i + 1) * BLOCK])
                worker.waker.wake()
                assert worker.wait_blocks(i + 1, 2.0)
                time.sleep(block_s)
        finally:
            worker.stop()
        assert worker.error is None
        sent.append(np.array(w.osc.params))
        warm_log.append(events)
        if lead_s > 0:
            assert len(agent_warms) == events.count("warm")
    assert np.array_equal(sent[0], sent[1])
    assert "warm" not in warm_log[0]
    with_warm = warm_log[1]
    # each warm-up comes right before a tick block's analysis (the first block ticks without one), once
    assert warm_log[0] == ["analyse"] * 5 and with_warm.count("analyse") == 5  # blocks 0, 3, 6, 9, 12
    assert with_warm.count("warm") >= 3 and with_warm[0] == "analyse"
    assert all(with_warm[i + 1] == "analyse" for i, e in enumerate(with_warm) if e == "warm")


def test_warm_up_lead_must_be_shorter_than_a_block(doubles: SimpleNamespace, follow_model: Path) -> None:
    worker, _w = make_worker(doubles, follow_model)
    with pytest.raises(ValueError, match="prepare_lead_s"):
        Worker(**{**_worker_kwargs(worker), "prepare_lead_s": BLOCK / SR})


def _worker_kwargs(worker: Worker) -> dict[str, object]:
    return {
        "block_size": BLOCK,
        "sample_rate_hz": SR,
        "tick_s": worker.tick_s,
        "descriptor_names": DESCRIPTOR_NAMES,
        "input_features": worker.input_features,
        "self_voice": worker.self_voice,
        "self_features": worker.self_features,
        "follower": worker.follower,
        "agent": worker.agent,
        "control": worker.control,
        "exchange": worker.exchange,
        "stats": worker.stats,
    }


def test_an_onset_sends_the_parameters_before_the_note_and_gate(doubles: SimpleNamespace, follow_model: Path) -> None:
    """Latency: `/serumlite/params` leaves first; the note and gate follow (a synth then starts the note
    with the new parameters)."""
    worker, w = make_worker(doubles, follow_model)
    order: list[str] = []
    osc = w.osc
    osc.send_params = lambda frame, log=order: log.append("params")
    osc.send_note = lambda midi, log=order: log.append("note")
    osc.send_gate = lambda on, log=order: log.append(f"gate {on}")
    feed(worker, np.zeros(BLOCK * 4, dtype=np.float32))
    assert order == ["params"] * 4
    order.clear()
    feed(worker, doubles.sine(440.0, 4 * BLOCK / SR, SR, amplitude=0.9))
    assert order[:3] == ["params", "note", "gate True"] and "gate True" not in order[3:]
    order.clear()
    feed(worker, np.zeros(BLOCK * 8, dtype=np.float32))
    assert order.index("gate False") == order.index("params") + 1 and order.count("gate False") == 1


def test_input_pushed_between_ticks_gives_the_descriptors_of_collected_input(
    doubles: SimpleNamespace, follow_model: Path
) -> None:
    """With the real extractor the input blocks between ticks go into its window as they arrive (`push`);
    the tick's descriptors, and so every parameter sent, equal those of collecting the blocks first."""
    from features.config import FeatureSettings
    from features.stream import StreamingDescriptors

    audio = doubles.sine(330.0, 0.6, SR, amplitude=0.7)
    sent, targets = [], []
    for pushes in (True, False):
        worker, w = make_worker(doubles, follow_model, tick_s=3 * BLOCK / SR)
        extractor = StreamingDescriptors(FeatureSettings(), SR, BLOCK)
        calls: list[str] = []
        inner_push = extractor.push
        extractor.push = lambda block, log=calls, inner=inner_push: (log.append("push"), inner(block))[1]
        worker.input_features = extractor
        worker._push_input = extractor.push if pushes else None
        ticks = []
        for i in range(len(audio) // BLOCK):
            worker.process_block(audio[i * BLOCK : (i + 1) * BLOCK])
            ticks.append(worker._target.copy())
        sent.append(np.array(w.osc.params))
        targets.append(np.array(ticks))
        assert calls.count("push") == (worker.stats.blocks - worker.stats.control_ticks if pushes else 0)
    np.testing.assert_array_equal(targets[0], targets[1])
    np.testing.assert_array_equal(sent[0], sent[1])


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


def _mfcc_model(model_dir: Path, follow_model: Path) -> Path:
    """The follow model's layer, reading mfcc_1 in place of pitch_confidence (a model that needs the
    descriptors the extractor can defer)."""
    from agents.policy import load_model, write_model_dir

    model = load_model(follow_model)
    meta = dict(model.meta)
    meta["descriptor_names"] = ["loudness_db", "centroid", "pitch_hz", "mfcc_1"]
    meta["normalization"] = {**meta["normalization"], "mfcc_1": {"low": -100.0, "high": 100.0}}
    return write_model_dir(model_dir, meta, model.policy.weights(), output="tanh")


def test_the_tick_sends_before_the_deferred_descriptors(
    doubles: SimpleNamespace, follow_model: Path, tmp_path: Path
) -> None:
    """With the real extractor and a model that reads no MFCC / chroma, the tick block's analysis leaves
    those for after the OSC message (`process_core`, send, `complete`); what is sent and the descriptors
    the tick ends with equal an unsplit analysis. A model that reads one is fed whole analyses, also when
    it is swapped in between the tick block's analysis and its policy step."""
    from features.config import FeatureSettings
    from features.stream import StreamingDescriptors

    audio = doubles.sine(330.0, 0.5, SR, amplitude=0.7)
    runs = []
    for split in (True, False):
        extractor = StreamingDescriptors(FeatureSettings(), SR, BLOCK)
        events: list[str] = []
        core, complete = extractor.process_core, extractor.complete
        extractor.process_core = lambda b, log=events, f=core: (log.append("core"), f(b))[1]
        extractor.complete = lambda log=events, f=complete, x=extractor: (  # logged when it has work to do
            log.append("Complete") if x._extras_due else None,
            f(),
        )[1]
        if not split:
            extractor.deferrable = ()  # nothing to defer: plain `process`
        worker, w = make_worker(doubles, follow_model, tick_s=3 * BLOCK / SR, input_features=extractor)
        send = w.osc.send_params
        w.osc.send_params = lambda frame, log=events, f=send: (log.append("send"), f(frame))[1]
        targets = []
        for i in range(len(audio) // BLOCK):
            worker.process_block(audio[i * BLOCK : (i + 1) * BLOCK])
            targets.append(worker._target.copy())
        ticks = worker.stats.control_ticks
        if split:  # per tick: the analysis without the extras, the message, then the extras
            assert "".join(e[0] for e in events) == "csC" * ticks, events
        else:  # whole analyses (`process`, no split step) before each message
            assert "".join(e[0] for e in events) == "s" * ticks, events
        runs.append((np.array(w.osc.params), np.array(targets)))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])

    mfcc_agent = LiveAgent.from_dir(_mfcc_model(tmp_path / "mfcc", follow_model), DESCRIPTOR_NAMES)
    extractor = StreamingDescriptors(FeatureSettings(), SR, BLOCK)
    reference = StreamingDescriptors(FeatureSettings(), SR, BLOCK)
    worker, w = make_worker(doubles, follow_model, input_features=extractor)
    assert worker._split_input
    seen: list[np.ndarray] = []
    act = mfcc_agent.act
    mfcc_agent.act = lambda a, t, p, **kw: (seen.append(t.copy()), act(a, t, p, **kw))[1]
    worker.swap_agent(mfcc_agent)  # queued: taken at the next tick, after that block's analysis
    block = audio[:BLOCK]
    worker.process_block(block)
    assert not worker._split_input
    np.testing.assert_array_equal(seen[0], reference.process(block))  # whole, MFCC included
