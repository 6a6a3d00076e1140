"""Files -> per-frame descriptor tables (corpus analysis, `python -m features describe`).

Input: an audio file of any rate / depth / channel count, `FeatureSettings`.
Output: `describe_file(path, settings)` -> (`times_s [T]`, `values [T, K]` float32 in
`DESCRIPTOR_NAMES` order, `AudioInfo`), computed at `settings.sample_rate_hz` by the batched torch
face (`features.batch`) in cache-sized chunks (bounded memory, exactly the frames of one pass); YIN's
per-lag stage runs in the streaming face's numba loop (`stream_kernels.yin_pitch`) instead of ~20
torch passes. `describe_audio` does the same for an array already at the analysis rate.

Threads (`threads`, `describe_file`'s default: the cores this process may use): the file is decoded and
resampled block by block (`audio_io.BlockDecoder`) on the calling thread while `threads - 1` workers
analyze the chunks whose samples have arrived; once decoding ends the calling thread analyzes chunks
too. torch ops and the numba loop release the GIL, and torch runs one intra-op thread per worker
meanwhile. Every chunk is the same computation on the same samples as the serial loop, so the values
agree with it up to float rounding (BLAS may block a matmul differently for another chunk size; tested
within 1e-5 relative). `describe_audio` stays serial unless asked (corpus workers, one process per core, use it).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from features import stream_kernels as kern
from features.audio_io import AudioInfo, BlockDecoder, load_audio
from features.batch import (
    Frames,
    analyze_frames,
    chroma_frames,
    frame_times_s,
    log_mel_frames,
    loudness_group,
    mfcc_from_log_mel,
    n_frames,
    spectral_shape,
)
from features.config import FeatureSettings
from features.dsp import AnalysisPlan, plan_for
from features.names import GROUPS
from features.pitch import yin_correlation

PROGRESS_MIN_FRAMES = 100_000  # ~1 hour at 16 kHz / hop 512: a few seconds of work
CHUNK_FRAMES = 384  # frames per torch call: ~1.5 MB tensors stay in cache (~1.7x faster than 2048 at once)
PARALLEL_CHUNK_FRAMES = 256  # with threads: more, smaller chunks balance the workers (same values)


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def describe_audio(
    audio: np.ndarray,
    settings: FeatureSettings,
    sample_rate_hz: int | None = None,
    *,
    progress: bool = False,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Mono audio at `sample_rate_hz` (default: the analysis rate) -> (times_s [T], values [T, K]).

    `progress`: a tqdm bar on stderr for long inputs (more than PROGRESS_MIN_FRAMES frames).
    `threads`: analysis threads (default 1, for callers that already run one process per core).
    """
    sr = settings.sample_rate_hz if sample_rate_hz is None else int(sample_rate_hz)
    plan = plan_for(sr, settings)
    _check_threads(threads)
    x = np.ascontiguousarray(audio, dtype=np.float32)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"audio must be 1-D mono with at least one sample, got shape {tuple(x.shape)}")
    total = n_frames(x.size, plan)
    bar = _bar(total, CHUNK_FRAMES if threads == 1 else PARALLEL_CHUNK_FRAMES, progress)
    if threads == 1:
        xt = torch.from_numpy(x)
        parts = []
        with torch.no_grad():
            for first in range(0, total, CHUNK_FRAMES):
                parts.append(_describe_chunk(xt, first, min(CHUNK_FRAMES, total - first), total, plan, settings))
                bar.update()
        values = torch.cat(parts).numpy()
    else:
        samples = _Samples.complete(x)
        values = _analyze(samples, plan, settings, threads, lambda: None, bar)
    bar.close()
    return frame_times_s(x.size, sr, settings), values.astype(np.float32, copy=False)


def describe_file(
    path: str | Path, settings: FeatureSettings, *, progress: bool = False, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray, AudioInfo]:
    """An audio file -> (times_s [T], values [T, K], AudioInfo) at `settings.sample_rate_hz`.

    `threads`: decoding + analysis threads (None: `available_cores()`; 1: decode, then analyze, serially).
    """
    threads = available_cores() if threads is None else threads
    _check_threads(threads)
    if threads == 1:
        audio, info = load_audio(path, settings.sample_rate_hz)
        times, values = describe_audio(audio, settings, progress=progress)
        return times, values, info
    sr = settings.sample_rate_hz
    plan = plan_for(sr, settings)
    decoder = BlockDecoder(path, sr)
    samples = _Samples(decoder.expected_frames + plan.hop)

    def decode() -> None:
        try:
            for block in decoder:
                samples.append(block)
        except BaseException as exc:
            samples.finish(exc)
            raise
        samples.finish()

    bar = _bar(n_frames(decoder.expected_frames, plan), PARALLEL_CHUNK_FRAMES, progress)
    values = _analyze(samples, plan, settings, threads, decode, bar)
    bar.close()
    return frame_times_s(samples.count, sr, settings), values.astype(np.float32, copy=False), decoder.info


def _check_threads(threads: int) -> None:
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")


def _bar(total_frames: int, chunk_frames: int, progress: bool) -> tqdm:
    chunks = -(-total_frames // chunk_frames)
    disabled = not progress or total_frames < PROGRESS_MIN_FRAMES
    return tqdm(total=chunks, desc="describe", unit="chunk", file=sys.stderr, disable=disabled)


def _describe_chunk(
    x: torch.Tensor, first: int, count: int, total: int, plan: AnalysisPlan, settings: FeatureSettings
) -> torch.Tensor:
    """Frames [first, first + count) of the `total` frames of `x` (all of it: the last chunk takes the tail)."""
    left = plan.window - plan.hop
    start = first * plan.hop
    end = start + count * plan.hop if first + count < total else x.numel()
    history = None
    if first > 0:
        past = x[max(0, start - left) : start]
        history = torch.nn.functional.pad(past, (left - past.numel(), 0)).unsqueeze(0)
    fr = analyze_frames(x[start:end].unsqueeze(0), plan.sample_rate_hz, settings, history=history)
    return torch.cat([_GROUPS[group](fr) for group in GROUPS], dim=-1)[0, :count]


def _pitch(fr: Frames) -> torch.Tensor:
    """YIN as `features.batch`, with the per-lag work in one numba loop per frame (~3x fewer passes)."""
    plan = fr.plan
    x, corr = yin_correlation(fr.frames, plan)
    out = np.empty((*x.shape[:-1], 2))
    kern.yin_frames(
        corr.reshape(-1, corr.shape[-1]).numpy(),
        x.reshape(-1, x.shape[-1]).numpy(),
        plan.floor_power,
        plan.tau_min,
        plan.tau_max,
        plan.yin_width,
        plan.pitch_threshold,
        float(plan.sample_rate_hz),
        out.reshape(-1, 2),
    )
    return torch.from_numpy(out).to(x.dtype)


# `features.batch.describe_frames(fr)` group by group (its per-name column stack costs ~10%), YIN by `_pitch`
_GROUPS: dict[str, Callable[[Frames], torch.Tensor]] = {
    "loudness": loudness_group,
    "specshape": spectral_shape,
    "mfcc": lambda fr: mfcc_from_log_mel(log_mel_frames(fr), fr.const),
    "chroma": chroma_frames,
    "pitch": _pitch,
}


class _ProducerFailedError(Exception):
    """The producer failed: workers stop (the producer's own exception is what the caller sees)."""


class _Samples:
    """Mono samples at the analysis rate, appended by one producer while workers read the settled prefix.

    Written samples never change; a grown buffer is a copy, so views handed out earlier stay valid.
    """

    def __init__(self, capacity: int) -> None:
        self._buffer = np.empty(max(1, capacity), dtype=np.float32)
        self.count = 0
        self.done = False
        self.error: BaseException | None = None
        self._cond = threading.Condition()

    @classmethod
    def complete(cls, audio: np.ndarray) -> _Samples:
        """All the samples at once (no copy)."""
        samples = cls(0)
        samples._buffer, samples.count, samples.done = audio, audio.size, True
        return samples

    def append(self, block: np.ndarray) -> None:
        n = block.size
        with self._cond:
            buffer = self._buffer
        if self.count + n > buffer.size:  # the header under-announced: grow (rare)
            grown = np.empty(max(2 * buffer.size, self.count + n), dtype=np.float32)
            grown[: self.count] = buffer[: self.count]
            buffer = grown
        buffer[self.count : self.count + n] = block  # outside the lock: readers only see [:count]
        with self._cond:
            self._buffer = buffer
            self.count += n
            self._cond.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        with self._cond:
            self.done = True
            if self.error is None:  # the first failure is the one that counts
                self.error = error
            self._cond.notify_all()

    def wait_for(self, needed: int) -> np.ndarray:
        """Block until `needed` samples are in or the producer is done -> the settled samples."""
        with self._cond:
            self._cond.wait_for(lambda: self.count >= needed or self.done)
            if self.error is not None:
                raise _ProducerFailedError
            return self._buffer[: self.count]


def _analyze(
    samples: _Samples,
    plan: AnalysisPlan,
    settings: FeatureSettings,
    threads: int,
    produce: Callable[[], None],
    bar: tqdm,
) -> np.ndarray:
    """Chunks of PARALLEL_CHUNK_FRAMES frames on `threads` threads as their samples arrive -> values [T, K].

    The calling thread runs `produce` (which fills and finishes `samples`), then analyzes too.
    """
    results: dict[int, torch.Tensor] = {}
    lock = threading.Lock()
    claimed = [0]
    errors: list[BaseException] = []

    def claim() -> int:
        with lock:
            first = claimed[0]
            claimed[0] += PARALLEL_CHUNK_FRAMES
            return first

    def work() -> None:
        try:
            with torch.no_grad():  # grad mode is per thread
                _work(samples, plan, settings, claim, results, lock, bar)
        except _ProducerFailedError:
            return
        except BaseException as exc:  # re-raised on the calling thread below
            with lock:
                errors.append(exc)
            samples.finish(exc)  # wakes the workers still waiting

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # one intra-op thread per worker: no oversubscribed OpenMP teams
    workers = [threading.Thread(target=work, name=f"describe-{i}", daemon=True) for i in range(threads - 1)]
    try:
        for w in workers:
            w.start()
        produce()
        work()
    finally:
        for w in workers:
            w.join()
        torch.set_num_threads(before)
    if errors:
        raise errors[0]
    return torch.cat([results[first] for first in sorted(results)]).numpy()


def _work(
    samples: _Samples,
    plan: AnalysisPlan,
    settings: FeatureSettings,
    claim: Callable[[], int],
    results: dict[int, torch.Tensor],
    lock: threading.Lock,
    bar: tqdm,
) -> None:
    """Claim chunks in order until past the end; a chunk runs once its samples (and the next frame's) are in."""
    while True:
        first = claim()
        # one more hop than the chunk needs: then the chunk is surely not the last (which takes the tail)
        audio = samples.wait_for((first + PARALLEL_CHUNK_FRAMES + 1) * plan.hop)
        if audio.size == 0:
            return  # finished without a sample: nothing to analyze
        total = n_frames(audio.size, plan)
        if first >= total:
            return
        count = min(PARALLEL_CHUNK_FRAMES, total - first)
        values = _describe_chunk(torch.from_numpy(audio), first, count, total, plan, settings)
        with lock:
            results[first] = values
            bar.update()
