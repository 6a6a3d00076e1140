"""Files -> per-frame descriptor tables (corpus analysis, `python -m features describe`).

Input: an audio file of any rate / depth / channel count, `FeatureSettings`.
Output: `describe_file(path, settings)` -> (`times_s [T]`, `values [T, K]` float32 in
`DESCRIPTOR_NAMES` order, `AudioInfo`), computed at `settings.sample_rate_hz` in cache-sized chunks of
frames (bounded memory, exactly the frames of one pass): numba kernels (`features.offline_kernels`) with
the streaming face's formulas around three batched torch FFTs per frame (rfft of the mean-removed frame,
which also gives the Hann spectrum, rfft of YIN's head, irfft of their cross spectrum) and one matmul
with the mel + chroma banks. `describe_audio` does the same for an array already at the analysis rate.

Threads (`threads`, `describe_file`'s default: the cores this process may use): the file is decoded and
resampled block by block (`audio_io.BlockDecoder`) on the calling thread while `threads - 1` workers
analyze the chunks whose samples have arrived; once decoding ends the calling thread analyzes chunks
too. torch ops and the numba kernels release the GIL. Every thread, workers included, sets torch (and so
MKL's FFTs) to one intra-op thread: MKL and OpenMP read that setting per thread, and a worker left at the
default ran each FFT on a team of all the cores (8x its CPU on this project's 2-vCPU machine). Every
frame is computed from its own samples whatever the chunk, so threads give exactly the serial values
(tested). `describe_audio` stays serial unless asked (corpus workers, one process per core, use it).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from features import offline_kernels as okern
from features.audio_io import AudioInfo, BlockDecoder, load_audio
from features.batch import frame_times_s, n_frames
from features.config import FeatureSettings
from features.dsp import LOUDNESS_OFFSET_DB, MAX_ABS_SAMPLE, AnalysisPlan, plan_for
from features.names import DESCRIPTOR_NAMES, N_MFCC

_LOUDNESS_GAIN = 10.0 ** (LOUDNESS_OFFSET_DB / 10.0)
PROGRESS_MIN_FRAMES = 100_000  # ~1 hour at 16 kHz / hop 512: a few seconds of work
CHUNK_FRAMES = 128  # frames per chunk: ~2.3 MB of buffers, mostly in cache (64..192 cost about the same)
PARALLEL_CHUNK_FRAMES = 128  # with threads (same values whatever the size)
# BLAS rounds a matmul of 1..3 rows differently (another kernel): the bank matmul always gets at least this many,
# so a row's values never depend on the size of its chunk
MIN_MATMUL_ROWS = 16


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
        parts = []
        with _one_torch_thread(), _pooled_analyzer(plan, CHUNK_FRAMES) as analyzer:
            for first in range(0, total, CHUNK_FRAMES):
                parts.append(_describe_chunk(analyzer, x, first, min(CHUNK_FRAMES, total - first)))
                bar.update()
        values = np.concatenate(parts)
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


class _ChunkAnalyzer:
    """One thread's buffers for chunks of up to `max_frames` frames (`features.offline_kernels`, torch's rffts
    and one matmul with the mel + chroma banks)."""

    def __init__(self, plan: AnalysisPlan, max_frames: int) -> None:
        self.plan = plan
        n, nb, band = plan.window, plan.n_bins, plan.n_band
        n_mels = plan.mel.shape[0]
        self._rows = np.zeros((2 * max_frames, n), dtype=np.float32)  # mean-removed frames, then YIN's heads
        self._stats = np.zeros((max_frames, 4))
        self._spectra = torch.zeros(2 * max_frames, nb, dtype=torch.complex64)
        self._bands = torch.zeros(max(max_frames, MIN_MATMUL_ROWS), band)
        self._banks = torch.zeros(max(max_frames, MIN_MATMUL_ROWS), n_mels + 12)
        self._n_mels = n_mels
        self._bank = torch.from_numpy(np.concatenate([plan.mel.T, plan.chroma.T], axis=1).astype(np.float32))
        self._out = np.zeros((max_frames, len(DESCRIPTOR_NAMES)))
        self._spectral = (
            int(plan.window),
            float(plan.spectrum_scale**2),
            np.ascontiguousarray(plan.kweight_ms),
            float(plan.band_floor_amp**2),
            np.ascontiguousarray(plan.freqs_hz / 1000.0),
            float(plan.rolloff_0to1),
            float(plan.floor_power),
            float(plan.floor_amp),
            _LOUDNESS_GAIN,
        )
        self._finish = (
            np.ascontiguousarray(plan.dct[:N_MFCC]),
            float(plan.floor_power),
            int(plan.tau_min),
            int(plan.tau_max),
            int(plan.yin_width),
            float(plan.pitch_threshold),
            float(plan.sample_rate_hz),
        )

    def __call__(self, audio: np.ndarray, first: int, count: int) -> np.ndarray:
        """Frames [first, first + count) of float32 `audio` (zeros past its end) -> float32 `[count, K]`."""
        plan = self.plan
        rows, stats, out = self._rows[: 2 * count], self._stats[:count], self._out[:count]
        okern.prepare_frames(audio, first, count, plan.hop, plan.yin_width, MAX_ABS_SAMPLE, rows, stats)
        spectra_t = torch.fft.rfft(torch.from_numpy(rows), out=self._spectra[: 2 * count])
        spectra = spectra_t.numpy()
        # buffers reused once read (a smaller working set): the cross spectra replace the heads' spectra,
        # the correlations the heads
        okern.cross_spectra(spectra, count, spectra[count:])
        rows_t = torch.from_numpy(rows)
        corr = torch.fft.irfft(spectra_t[count:], n=plan.window, out=rows_t[count:]).numpy()
        okern.spectral_frames(spectra, stats, count, *self._spectral, self._bands.numpy(), out)
        rows_mm = max(count, MIN_MATMUL_ROWS)  # the other rows hold earlier (finite) powers: computed, ignored
        banks = torch.mm(self._bands[:rows_mm], self._bank, out=self._banks[:rows_mm])
        banks[:count, : self._n_mels].add_(plan.floor_power).log_()  # one vectorized pass, not a log per band
        banks = banks.numpy()
        okern.finish_frames(banks, corr, rows, stats, count, *self._finish, out)
        return out.astype(np.float32)


_POOL: dict[tuple[AnalysisPlan, int], list[_ChunkAnalyzer]] = {}  # idle analyzers: buffers reused across calls
_POOL_LOCK = threading.Lock()
POOL_SIZE = 4  # idle analyzers kept per (plan, chunk size), ~2.3 MB each


@contextlib.contextmanager
def _pooled_analyzer(plan: AnalysisPlan, max_frames: int) -> Iterator[_ChunkAnalyzer]:
    """An analyzer for this thread (an idle one if any: fresh buffers cost ~1 ms of page faults per call)."""
    with _POOL_LOCK:
        idle = _POOL.setdefault((plan, max_frames), [])
        analyzer = idle.pop() if idle else None
    if analyzer is None:
        analyzer = _ChunkAnalyzer(plan, max_frames)
    try:
        yield analyzer
    finally:
        with _POOL_LOCK:
            if len(idle) < POOL_SIZE:
                idle.append(analyzer)


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """torch on one intra-op thread meanwhile (restored after): the chunk ops are too small for an OpenMP team,
    and each worker thread is already one of the `threads`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _one_intra_op_thread_here() -> None:
    """torch (and MKL's FFTs) on one thread for the calling thread: MKL and OpenMP read that setting per thread, so
    a worker not told runs each FFT on a team of all the cores (8x its CPU on this project's 2-vCPU machine)."""
    torch.set_num_threads(1)


def _describe_chunk(analyzer: _ChunkAnalyzer, audio: np.ndarray, first: int, count: int) -> np.ndarray:
    """Frames [first, first + count) of `audio` (the settled samples; a chunk past them reads zeros)."""
    return analyzer(audio, first, count)


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
        self._waiting: list[int] = []  # the sample counts the blocked readers wait for

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
            if self._waiting and min(self._waiting) <= self.count:  # no wake-up (a context switch) for nothing
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
            self._waiting.append(needed)
            try:
                self._cond.wait_for(lambda: self.count >= needed or self.done)
            finally:
                self._waiting.remove(needed)
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
    results: dict[int, np.ndarray] = {}
    lock = threading.Lock()
    claimed = [0]
    errors: list[BaseException] = []

    def claim() -> int:
        with lock:
            first = claimed[0]
            claimed[0] += PARALLEL_CHUNK_FRAMES
            return first

    def work() -> None:
        _one_intra_op_thread_here()
        try:
            with _pooled_analyzer(plan, PARALLEL_CHUNK_FRAMES) as analyzer:
                _work(samples, analyzer, claim, results, lock, bar)
        except _ProducerFailedError:
            return
        except BaseException as exc:  # re-raised on the calling thread below
            with lock:
                errors.append(exc)
            samples.finish(exc)  # wakes the workers still waiting

    workers = [threading.Thread(target=work, name=f"describe-{i}", daemon=True) for i in range(threads - 1)]
    with _one_torch_thread():
        try:
            for w in workers:
                w.start()
            produce()
            work()
        finally:
            for w in workers:
                w.join()
    if errors:
        raise errors[0]
    return np.concatenate([results[first] for first in sorted(results)])


def _work(
    samples: _Samples,
    analyzer: _ChunkAnalyzer,
    claim: Callable[[], int],
    results: dict[int, np.ndarray],
    lock: threading.Lock,
    bar: tqdm,
) -> None:
    """Claim chunks in order until past the end; a chunk runs once its samples are in (or the producer is done)."""
    while True:
        first = claim()
        audio = samples.wait_for((first + PARALLEL_CHUNK_FRAMES) * analyzer.plan.hop)
        if audio.size == 0:
            return  # finished without a sample: nothing to analyze
        total = n_frames(audio.size, analyzer.plan)
        if first >= total:
            return
        count = min(PARALLEL_CHUNK_FRAMES, total - first)
        values = _describe_chunk(analyzer, audio, first, count)
        with lock:
            results[first] = values
            bar.update()
