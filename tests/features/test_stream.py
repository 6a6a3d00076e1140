"""features.stream: one vector per block, fixed window, no allocation per block in steady state."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from features.config import FeatureSettings
from features.names import N_DESCRIPTORS
from features.stream import StreamingDescriptors
from tests.features.signals import phrase

S = FeatureSettings()


def test_no_allocation_per_block_in_steady_state() -> None:
    st = StreamingDescriptors(S, 48000, 512)
    x = phrase(48000, 2.5).astype(np.float32)
    blocks = [x[i : i + 512] for i in range(0, len(x) - 512, 512)]
    tracemalloc.start()
    try:
        for b in blocks[:60]:  # warm-up: every ring position, first-call caches
            st.process(b)
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        for b in blocks[60:]:
            st.process(b)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # a per-block array would show: a window is 24 KB, a band spectrum 4 KB; Python floats are a few bytes
    assert len(blocks) - 60 > 150
    assert after - before < 1024, after - before
    assert peak - before < 3500, peak - before


def test_output_buffer_is_reused_and_float32() -> None:
    st = StreamingDescriptors(S, 48000, 256)
    a = st.process(np.zeros(256, dtype=np.float32))
    b = st.process(np.ones(256, dtype=np.float32) * 0.1)
    assert a is b and a.dtype == np.float32 and a.shape == (N_DESCRIPTORS,)


def test_any_block_length_and_dtype() -> None:
    x = phrase(16000, 1.0)
    ref = StreamingDescriptors(S, 16000, 512)
    odd = StreamingDescriptors(S, 16000, 512)
    for i in range(0, 16000 - 1024, 1024):
        want = ref.process(x[i : i + 512]).copy()
        want = ref.process(x[i + 512 : i + 1024]).copy()
        got = odd.process(x[i : i + 300].astype(np.float32))
        got = odd.process(x[i + 300 : i + 1024].astype(np.float32))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    big = StreamingDescriptors(S, 16000, 4096)
    assert np.all(np.isfinite(big.process(x[:4096])))


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="block_size"):
        StreamingDescriptors(S, 48000, 0)
    st = StreamingDescriptors(S, 48000, 512)
    with pytest.raises(ValueError, match="1-D mono"):
        st.process(np.zeros((512, 2)))


def test_delta_matches_batch_deltas() -> None:
    import torch

    from features import batch
    from features.dsp import plan_for

    x = phrase(16000, 0.5)
    hop = plan_for(16000, S).hop
    st = StreamingDescriptors(S, 16000, hop)
    got = []
    for i in range(len(x) // hop):
        st.process(x[i * hop : (i + 1) * hop])
        got.append(st.delta().copy())
    want = batch.deltas(batch.describe_batch(torch.tensor(x, dtype=torch.float32)[None], 16000, S))[0].numpy()
    np.testing.assert_allclose(np.stack(got), want, rtol=1e-3, atol=0.02)
    st.reset()
    st.process(x[:hop])
    assert np.all(st.delta() == 0)


def test_first_block_is_not_slower_than_steady_state() -> None:
    import time

    st = StreamingDescriptors(S, 48000, 512)  # kernels are loaded in the constructor
    block = np.zeros(512, dtype=np.float32)
    start = time.perf_counter()
    st.process(block)
    first = time.perf_counter() - start
    assert first < 0.05  # a compile or cache load would take 100s of ms; a block takes ~0.1 ms


def test_warm_changes_nothing_and_allocates_nothing() -> None:
    """`warm()` (the live worker's cache warm-up before a tick block) recomputes the current window in place:
    the values and deltas of the following blocks are those of an analyser that never warmed."""
    plain, warmed = StreamingDescriptors(S, 48000, 512), StreamingDescriptors(S, 48000, 512)
    x = phrase(48000, 1.0).astype(np.float32)
    for i in range(0, len(x) - 512, 512):
        warmed.warm()
        expected = plain.process(x[i : i + 512]).copy()
        got = warmed.process(x[i : i + 512]).copy()
        warmed.warm()
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(warmed.delta(), plain.delta())
        np.testing.assert_array_equal(warmed._out, expected)  # warm leaves the returned buffer alone
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(100):
            warmed.warm()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 1024, after - before


@pytest.mark.parametrize("rate", [16000, 48000])
def test_push_then_process_equals_process_of_both(rate: int) -> None:
    """`push` (the live worker's input between ticks) takes audio into the window without analysing it."""
    x = phrase(rate, 1.0).astype(np.float32)
    split, whole = StreamingDescriptors(S, rate, 512), StreamingDescriptors(S, rate, 512)
    for i in range(0, len(x) - 1536, 1536):
        split.push(x[i : i + 512])
        split.push(x[i + 512 : i + 1024])
        got = split.process(x[i + 1024 : i + 1536]).copy()
        want = whole.process(x[i : i + 1536]).copy()
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(split.delta(), whole.delta())
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(100):
            split.push(x[i * 512 : (i + 1) * 512])
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 1024, after - before
    with pytest.raises(ValueError, match="1-D mono"):
        split.push(np.zeros((512, 2)))


def test_process_core_then_complete_equals_process() -> None:
    """The live worker's split: everything but MFCC and chroma first, those after the parameters left."""
    from features.names import INDEX
    from features.stream import DEFERRABLE

    deferred = np.array([INDEX[n] for n in DEFERRABLE])
    core = np.setdiff1d(np.arange(N_DESCRIPTORS), deferred)
    assert deferred.size == 25 and core.size == N_DESCRIPTORS - 25
    whole, split = StreamingDescriptors(S, 48000, 512), StreamingDescriptors(S, 48000, 512)
    x = phrase(48000, 1.5).astype(np.float32)
    blocks = [x[i : i + 512] for i in range(0, len(x) - 512, 512)]
    before = np.zeros(N_DESCRIPTORS, dtype=np.float32)
    for i, b in enumerate(blocks):
        want = whole.process(b).copy()
        got = split.process_core(b)
        np.testing.assert_array_equal(got[core], want[core])
        np.testing.assert_array_equal(got[deferred], before[deferred])  # the last window's, until complete()
        if i % 5 == 4:
            split.warm()  # the worker's warm-up between the two steps changes nothing
        np.testing.assert_array_equal(split.complete(), want)
        np.testing.assert_array_equal(split.complete(), want)  # nothing left to do
        np.testing.assert_array_equal(split.delta(), whole.delta())
        before = want
    assert np.ptp(before[deferred]) > 0  # the deferred values are real ones (a tonal phrase)
    tracemalloc.start()
    try:
        m0, _ = tracemalloc.get_traced_memory()
        for b in blocks[:40]:
            split.process_core(b)
            split.complete()
        m1, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert m1 - m0 < 1024, m1 - m0


def test_process_core_twice_completes_the_first_window() -> None:
    """A second `process_core` without `complete` first finishes the pending window (deltas stay whole)."""
    a, b = StreamingDescriptors(S, 16000, 512), StreamingDescriptors(S, 16000, 512)
    x = phrase(16000, 0.5).astype(np.float32)
    a.process(x[:512])
    want = a.process(x[512:1024]).copy()
    b.process_core(x[:512])
    b.process_core(x[512:1024])
    np.testing.assert_array_equal(b.complete(), want)
    np.testing.assert_array_equal(b.delta(), a.delta())


def test_transforms_equal_numpys_ffts_around_spectra() -> None:
    """stream_kernels.transforms (DUCC0 inside numba) = numpy's rfft, `spectra`, numpy's irfft."""
    from features import stream_kernels as kern

    rng = np.random.default_rng(9)
    n = 1024
    pair = rng.standard_normal((2, n))
    pair[1, 300:] = 0.0  # YIN's head: the first frames, the rest zero
    spec_pair = np.zeros((2, n // 2 + 1), np.complex128)
    windowed, corr = np.zeros(n // 2 + 1, np.complex128), np.zeros(n)
    kern.transforms(pair, spec_pair, windowed, 0.1, corr, np.array([1]), np.array([0]))
    want_pair = np.fft.rfft(pair)
    want_windowed = np.zeros_like(windowed)
    kern.spectra(want_pair[0], want_pair[1], want_windowed, 0.1, n)
    want_corr = np.fft.irfft(want_pair[1], n=n)
    np.testing.assert_allclose(spec_pair, want_pair, rtol=0, atol=1e-12 * np.abs(want_pair).max())
    np.testing.assert_allclose(windowed, want_windowed, rtol=0, atol=1e-12 * np.abs(want_windowed).max())
    np.testing.assert_allclose(corr, want_corr, rtol=0, atol=1e-12 * np.abs(want_corr).max())
