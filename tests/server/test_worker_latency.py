"""The worker's latency path and real-time scheduling, with a deterministic model and doubles: what a tick
sends first (the parameters before the note and gate, before the self voice renders, before the deferred
MFCC / chroma analysis), input pushed into the window between ticks, block timing, and the worker thread
(reading the ring, sleeping until woken, warming up before a tick block)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from features.names import DESCRIPTOR_NAMES
from server.agent import LiveAgent
from server.ring_buffer import RingBuffer
from server.worker import IDLE_WAIT_S, Worker
from tests.server.worker_harness import BLOCK, SR, VOL, feed, make_worker


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


def test_block_timing_separates_tick_blocks_and_cpu_time(doubles: SimpleNamespace, follow_model: Path) -> None:
    worker, _w = make_worker(doubles, follow_model, tick_s=3 * BLOCK / SR)
    feed(worker, doubles.sine(440.0, 9 * BLOCK / SR, SR, amplitude=0.9))
    stats = worker.stats.to_dict()
    assert worker.stats.block_us.count == worker.stats.block_cpu_us.count == 9
    assert worker.stats.tick_block_us.count == worker.stats.control_ticks == 4  # blocks 0, 2, 5, 8
    assert stats["block_cpu_us"]["max"] > 0 and 0 < stats["tick_block_us"]["p50"] <= stats["block_us"]["max"]


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


WARM_START_SCRIPT = """
import json, sys
import numba.core.dispatcher as dispatcher
sys.path.insert(0, sys.argv[1])
from benchmarks import live
from server import worker
from settings import load_settings

in_block, compiled = [False], []
compile_for_args = dispatcher.Dispatcher._compile_for_args
def counting(self, *args, **kwargs):
    if in_block[0]:
        compiled.append(self.py_func.__qualname__)
    return compile_for_args(self, *args, **kwargs)
dispatcher.Dispatcher._compile_for_args = counting
process_block = worker.Worker.process_block
def watched(self, block):
    in_block[0] = True
    try:
        process_block(self, block)
    finally:
        in_block[0] = False
worker.Worker.process_block = watched
settings = load_settings(None)
result = live.block_timing(settings, live.default_audio(settings), int(sys.argv[2]))
print(json.dumps({"compiled": compiled, "blocks": result["blocks"]}))
"""


@pytest.mark.parametrize("block_size", [512, 256])
def test_the_server_warms_every_kernel_before_the_first_block(block_size: int) -> None:
    """A fresh process: the server's start-up warm-up (`LiveServer._warm_up`) loads every numba kernel a block
    uses (the deferred descriptors' and the control step's once cost the first block ~10 ms, loaded from cache
    while the streams ran); no block of a whole file compiles or loads one."""
    repo = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", WARM_START_SCRIPT, str(repo), str(block_size)],
        capture_output=True,
        text=True,
        check=False,
        cwd=repo,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["blocks"] > 100 and result["compiled"] == []
