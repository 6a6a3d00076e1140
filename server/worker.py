"""The worker thread: input blocks -> descriptors -> note/gate -> observation -> policy -> frame -> OSC.

Input: mono blocks from the `RingBuffer` the input callback fills (device or file input), or
external descriptor frames from OSC (`--input osc`), plus queued control commands.
Output: per control tick, a parameter frame published to the `FrameExchange` (the output callback
plays it), `/serumlite/params` (+ note, gate, feature echo) through `OscOut`, counters and a
per-block timing histogram in `LiveStats`, and optionally a `Trace` for the plot.

The agent hears itself: a silent "self" voice in this thread renders the same parameters, note and
gate as the audible synth, and a second descriptor extractor analyses it (the agent's own
descriptors, as in training's render + analyze). The policy runs once per control tick
(`tick_s`, by default training's feature hop), so the agent moves on stage at the pace it learned.

Scheduling: the input and self audio are accumulated block by block and analysed once per tick
(the extractors keep their own analysis window, so this gives the same descriptors as analysing
every block, at a fraction of the cost; fed one hop per tick it is exactly training's framing).
The input blocks between ticks go into the input extractor's window as they arrive (`push`: the
same window, tested), so the tick block's analysis resamples only its own block.
On the tick block the worker analyses the input (without the descriptors the model does not read and
the extractor can defer, MFCC and chroma: those follow the send), runs the policy and sends the parameters first;
the self voice renders that block afterwards, with the parameters just chosen (as training renders
after each action): on the next block when that one does not tick (so the tick block carries only
the input analysis and the policy), else right away, followed, when every block ticks, by the
self analysis for the next tick; otherwise the self analysis runs one block before the tick. So no
block carries both analyses and only the input analysis and the policy stand between a block's
arrival and its OSC message. Wake-up: with `ring_signals` (the input callback writes a byte to
`waker` after each block, see `server.ring_buffer`) the worker sleeps in `select` until a block or
a command comes; without it, it sleeps until ~3/4 of a block after the last one, then polls the
ring every `FINE_POLL_S`. OSC commands and stop wake it through the same pipe. Warm-up
(`prepare_lead_s` > 0): when the next block will tick, the worker wakes that long before it is due
and has the input extractor analyse its current window again, the policy take a step and the
control state its tick, both on scratch copies (`warm()`: nothing changes), so that the tick block's
work finds its code and data in the caches (measured on a shared VM: ~40% and ~60% faster than
after a block's idle sleep, when other tenants have evicted the caches).
Everything here preallocates; nothing blocks but the waits.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence

import numpy as np

from server.agent import LiveAgent
from server.control import FRAME_SIZE, GATE_INDEX, NOTE_INDEX, ControlState, FrameExchange
from server.ring_buffer import RingBuffer, WakePipe
from server.stats import LiveStats
from server.trace import Trace
from server.worker_parts import Accumulator, Extractor, NoteGateStage, OscSink, Voice, yield_to_audio_threads
from synth.note_gate import NoteGateFollower
from synth.params import N_PARAMS

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.05  # without audio input, the worker wakes at least this often to check stop
FINE_POLL_S = 0.0002  # with audio input, near the next block's arrival the worker looks this often
EARLY_WAKE_BLOCKS = 0.75  # ... from this fraction of a block after the previous block


class Worker:
    """Owns the control loop; `start()` runs it on a thread, `process_block` / `process_features` run one step."""

    def __init__(
        self,
        *,
        block_size: int,
        sample_rate_hz: int,
        tick_s: float,
        descriptor_names: Sequence[str],
        input_features: Extractor | None,
        self_voice: Voice,
        self_features: Extractor,
        follower: NoteGateFollower,
        agent: LiveAgent,
        control: ControlState,
        exchange: FrameExchange,
        stats: LiveStats,
        ring: RingBuffer | None = None,
        osc: OscSink | None = None,
        feature_echo: bool = False,
        trace: Trace | None = None,
        ring_signals: bool = False,
        prepare_lead_s: float = 0.0,
    ) -> None:
        if tick_s <= 0:
            raise ValueError(f"control tick must be > 0 s, got {tick_s}")
        if not 0.0 <= prepare_lead_s < block_size / float(sample_rate_hz):
            raise ValueError(f"prepare_lead_s must be in [0, one block), got {prepare_lead_s}")
        self.block_size = int(block_size)
        self.block_s = block_size / float(sample_rate_hz)
        self.tick_s = float(tick_s)
        self.names = tuple(descriptor_names)
        self.input_features = input_features
        self.self_voice = self_voice
        self.self_features = self_features
        self.follower = follower
        self._hold_closed = bool(follower.settings.hold_while_gate_closed)
        self.agent = agent
        self.control = control
        self.exchange = exchange
        self.stats = stats
        self.ring = ring
        self.osc = osc
        self.feature_echo = feature_echo
        self.trace = trace
        self.waker = WakePipe()
        self.ring_signals = ring_signals  # the ring's producer wakes `waker` after each block
        self._last_block_s = 0.0  # perf_counter when the last block was picked up
        warm = getattr(input_features, "warm", None)  # optional: test doubles need not have it
        self._warm = warm if (prepare_lead_s > 0 and ring is not None and callable(warm)) else None
        self.prepare_lead_s = float(prepare_lead_s)
        self._prepared = False  # warmed up for the coming tick block
        push = getattr(input_features, "push", None)  # optional (see `Extractor`)
        self._push_input = push if callable(push) else None
        core = getattr(input_features, "process_core", None)  # optional too: a split analysis
        self._deferrable = frozenset(getattr(input_features, "deferrable", ())) if callable(core) else frozenset()
        self._split_input = False  # the current model reads none of the deferrable descriptors
        self._input_due = False  # the tick's input analysis waits for `complete()`
        capacity = (math.ceil(self.tick_s / self.block_s) + 2) * self.block_size
        self._in_acc = Accumulator(capacity)
        self._self_acc = Accumulator(capacity)
        self._self_fresh = False  # the self audio was analysed since the last tick
        self._deferred_frames = 0  # the tick block's self audio, rendered at the next block
        self._voice_params_due = False  # the self voice gets the published parameters before it renders
        self._notes = NoteGateStage(follower, self.names)
        self._block = np.zeros(self.block_size, dtype=np.float32)
        self._self_block = np.zeros(self.block_size, dtype=np.float32)
        self._self_desc = np.zeros(len(self.names), dtype=np.float32)
        self._target_all = np.full(len(self.names), np.nan, dtype=np.float32)
        self._target = self._target_all
        self._frame = np.zeros(FRAME_SIZE, dtype=np.float32)
        self._since_tick_s = self.tick_s  # the first block ticks
        self._swaps: deque[LiveAgent] = deque()  # hot-swaps from the OSC thread (append/popleft are atomic)
        self._reset_history = False
        self._external: np.ndarray | None = None  # latest `/agent/features` (a fresh array per message)
        self._external_seq = 0  # bumped by the OSC thread after storing `_external`
        self._external_seen = 0
        self._stop = False
        self._thread: threading.Thread | None = None
        self._processed = threading.Condition()
        self.error: BaseException | None = None
        self.time_s = 0.0  # audio time processed so far
        self._self_desc[:] = self_features.process(self._self_block)  # the silent voice, before any tick
        self._take_agent(agent)
        self._publish()

    # --- other threads ----------------------------------------------------------------------------
    def swap_agent(self, agent: LiveAgent) -> None:
        """Hot-swap (from the OSC thread, after loading there): takes effect at the next tick."""
        self._swaps.append(agent)
        self.waker.wake()

    def request_history_reset(self) -> None:
        """`/agent/reset`: the observation history starts afresh at the next tick."""
        self._reset_history = True

    def push_features(self, values: np.ndarray) -> None:
        """`--input osc`: a new external descriptor frame (model order), from the OSC thread."""
        self._external = values
        self._external_seq += 1
        self.stats.external_frames_received += 1
        self.waker.wake()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="live-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop = True
        self.waker.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("live worker did not stop within %.1f s", timeout_s)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_blocks(self, n_blocks: int, timeout_s: float) -> bool:
        """Wait until `n_blocks` blocks have been processed (the file driver's `--fast` backpressure)."""
        with self._processed:
            return self._processed.wait_for(lambda: self.stats.blocks >= n_blocks or self._stop, timeout_s)

    # --- the loop ---------------------------------------------------------------------------------
    def _run(self) -> None:
        not_batch = yield_to_audio_threads()
        if not_batch:
            log.info("the worker thread keeps its scheduling policy (%s)", not_batch)
        try:
            while not self._stop:
                busy = False
                if self.ring is not None:
                    while not self._stop and self.ring.read_into(self._block):
                        self.process_block(self._block)
                        busy = True
                if self._external_seq != self._external_seen and self._external is not None:
                    self._external_seen = self._external_seq
                    self.process_features(self._external)
                    busy = True
                if not busy:
                    self._take_pending_agent()
                    if self.control.apply_commands():
                        self._publish()
                        self._send_params()
                    if self._warm_due():
                        self._prepared = True
                        self._warm()  # type: ignore[misc]
                        self.agent.warm(self._self_desc, self._target, self.control.params_0to1)
                        self.control.warm(self.agent.warm_action, self.agent.controlled, self.agent.delta_max)
                        continue  # the block may have arrived meanwhile
                    self.waker.wait(self._idle_wait_s())
        except Exception as exc:  # a bug: keep it for the app to report, stop cleanly
            self.error = exc
            log.exception("live worker stopped on an error")
        finally:
            with self._processed:
                self._stop = True
                self._processed.notify_all()

    def _next_block_ticks(self) -> bool:
        return self._since_tick_s + self.block_s + 1e-9 >= self.tick_s

    def _warm_point_s(self) -> float:
        """perf_counter at which to warm up for the coming block."""
        return self._last_block_s + self.block_s - self.prepare_lead_s

    def _warm_pending(self) -> bool:
        """A warm-up is configured and not yet done for the coming block, which will tick."""
        return self._warm is not None and not self._prepared and self._last_block_s > 0.0 and self._next_block_ticks()

    def _warm_due(self) -> bool:
        return self._warm_pending() and time.perf_counter() >= self._warm_point_s()

    def _idle_wait_s(self) -> float:
        now = time.perf_counter()
        wait = IDLE_WAIT_S
        if self._warm_pending():
            wait = min(wait, max(self._warm_point_s() - now, 0.0))
        if self.ring is None or self.ring_signals:
            return wait
        early = self._last_block_s + EARLY_WAKE_BLOCKS * self.block_s - now
        return min(early, wait) if early > FINE_POLL_S else min(FINE_POLL_S, wait)

    def process_block(self, block: np.ndarray) -> None:
        """One audio block: collect input and self audio; analyse and tick when due (see the module doc)."""
        t0 = time.perf_counter_ns()
        c0 = time.thread_time_ns()
        self._last_block_s = t0 * 1e-9
        self._prepared = False
        n = block.shape[0]
        self.time_s += self.block_s
        self._since_tick_s += self.block_s
        ticked = self._since_tick_s + 1e-9 >= self.tick_s
        if self._push_input is not None and not ticked:
            self._push_input(block)  # into the extractor's window now: the tick block resamples only itself
        else:
            if not self._in_acc.room(n):
                self._analyse_input()
            self._in_acc.append(block)
        if ticked:
            self._since_tick_s = min(self._since_tick_s - self.tick_s, self.tick_s)
            self._analyse_input(split=self._split_input)
            self._tick(self._target, model_order=False)  # the OSC message leaves here
            if self._since_tick_s + self.block_s + 1e-9 < self.tick_s:
                self._deferred_frames = n  # the next block does not tick: it renders this one too
            else:
                self._render_self(n)
                if not self._self_fresh:
                    self._analyse_self()  # every block ticks: after the tick (serves the next one)
            self._self_fresh = False
        else:
            if self._deferred_frames:
                self._render_self(self._deferred_frames)
                self._deferred_frames = 0
            self._render_self(n)
            if self._since_tick_s + self.block_s + 1e-9 >= self.tick_s:
                self._analyse_self()  # the next block ticks: do this half of the work now
        stats = self.stats
        block_us = (time.perf_counter_ns() - t0) * 1e-3
        stats.block_us.record(block_us)
        stats.block_cpu_us.record((time.thread_time_ns() - c0) * 1e-3)
        if ticked:
            stats.tick_block_us.record(block_us)
        with self._processed:
            self.stats.blocks += 1
            self._processed.notify_all()

    def process_features(self, values: np.ndarray) -> None:
        """One external descriptor frame (`--input osc`): the self voice advances one tick of audio."""
        t0 = time.perf_counter_ns()
        agent = self.agent
        if values.shape != (agent.n_descriptors,):
            log.warning("external features: %d values, the model expects %d", values.shape[0], agent.n_descriptors)
            return
        self._target_all[agent.descriptor_index] = values
        for _ in range(max(1, round(self.tick_s / self.block_s))):
            self._render_self(self.block_size)
            self.time_s += self.block_s
        self._analyse_self()
        self.stats.external_feature_frames += 1
        self._tick(values, model_order=True)
        self.stats.block_us.record((time.perf_counter_ns() - t0) * 1e-3)

    def _render_self(self, n_frames: int) -> None:
        if self._voice_params_due:
            self._voice_params_due = False
            self.self_voice.set_params(self.control.output_0to1)
        out = self._self_block[:n_frames]
        self.self_voice.process(out)
        if not self._self_acc.room(n_frames):
            self._analyse_self()
        self._self_acc.append(out)

    def _analyse_self(self) -> None:
        if self._self_acc.fill:
            self._self_desc[:] = self.self_features.process(self._self_acc.take())
        self._self_fresh = True

    def _analyse_input(self, *, split: bool = False) -> None:
        features = self.input_features
        if self._in_acc.fill and features is not None:
            if split:
                self._target = features.process_core(self._in_acc.take())  # type: ignore[attr-defined]
            else:
                self._target = features.process(self._in_acc.take())
            self._input_due = split

    def _complete_input(self) -> None:
        if self._input_due:
            self._input_due = False
            self.input_features.complete()  # type: ignore[union-attr]  # in place: `self._target`

    def _tick(self, target: np.ndarray, *, model_order: bool) -> None:
        ctl = self.control
        self._take_pending_agent()
        if not self._split_input:  # a model swapped in that reads the deferred descriptors: complete first
            self._complete_input()
        if self._reset_history:
            self._reset_history = False
            self.agent.reset()
        agent = self.agent
        ctl.apply_commands()
        full = self._target_all if model_order else target
        self._notes.follow(full, self.self_voice, self._frame)
        if ctl.policy_active:
            action = agent.act(self._self_desc, target, ctl.params_0to1, target_is_model_order=model_order)
            if self._frame[GATE_INDEX] > 0.0 or not self._hold_closed:
                ctl.tick(action, agent.controlled, agent.delta_max)
            else:  # a rest (`synth.hold_while_gate_closed`): the policy ran, its move is not applied
                ctl.tick(None, agent.controlled, agent.delta_max)
        else:
            ctl.tick(None, agent.controlled, agent.delta_max)
        self._send_params()
        self._notes.send(self.osc, self._frame)  # after the parameters: a note starts with them, they leave sooner
        self._publish()
        self._complete_input()  # the deferred descriptors of this tick's input, now that the parameters left
        if self.feature_echo and self.osc is not None:
            self.osc.send_features(target if model_order else target[agent.descriptor_index])
        self.stats.control_ticks += 1
        if self.trace is not None:
            self.trace.append(
                self.time_s, full, self._self_desc, ctl.output_0to1, self._frame[NOTE_INDEX], self._frame[GATE_INDEX]
            )

    def _take_pending_agent(self) -> None:
        while self._swaps:
            self._take_agent(self._swaps.popleft())
            self.agent.reset()

    def _take_agent(self, agent: LiveAgent) -> None:
        self.agent = agent
        self._split_input = bool(self._deferrable) and self._deferrable.isdisjoint(agent.descriptor_names)

    def _publish(self) -> None:
        self._frame[:N_PARAMS] = self.control.output_0to1
        self.exchange.publish(self._frame)
        self._voice_params_due = True

    def _send_params(self) -> None:
        if self.osc is not None:
            self.osc.send_params(self.control.output_0to1)
