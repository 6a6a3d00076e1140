"""features.stream_resample: block by block, scipy's resample_poly samples; repairs; no allocation per block."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy.signal import resample_poly

from features.stream_resample import StreamResampler, reduced_ratio


def _stream(rs: StreamResampler, x: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    ring = np.zeros(len(x) * rs.up // rs.down + 16)
    pos, start = 0, 0
    for n in sizes:
        pos = rs.push(x[start : start + n], ring, pos)
        start += n
    return ring[:pos]


@pytest.mark.parametrize("from_hz", [48000, 44100, 22050, 96000, 8000])
def test_any_split_gives_resample_polys_samples(from_hz: int) -> None:
    rng = np.random.default_rng(from_hz)
    x = 0.3 * rng.standard_normal(from_hz // 2)
    sizes = rng.integers(0, 700, size=4000)  # zeros and ones included
    sizes = sizes[np.cumsum(sizes) <= len(x)]
    sizes = np.append(sizes, len(x) - sizes.sum())
    rs = StreamResampler(from_hz, 16000, max_abs=4.0)
    got = _stream(rs, x, sizes)
    want = resample_poly(x, rs.up, rs.down)
    # every output whose inputs have all arrived has left, the rest waits for the look-ahead
    look_ahead = rs.half_len / rs.up
    assert len(want) - len(got) <= look_ahead * rs.up / rs.down + 1
    np.testing.assert_allclose(got, want[: len(got)], rtol=0, atol=1e-12)
    assert rs.delay_s == pytest.approx(look_ahead / from_hz)


def test_float32_input_and_reset() -> None:
    x = np.sin(np.arange(9600) * 0.05).astype(np.float32)
    rs = StreamResampler(48000, 16000, max_abs=4.0)
    first = _stream(rs, x, np.full(75, 128))
    rs.reset()
    again = _stream(rs, x, np.full(75, 128))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, resample_poly(x.astype(np.float64), 1, 3)[: len(first)], atol=1e-6)


def test_bad_samples_are_repaired_and_outputs_clamped() -> None:
    x = np.zeros(3000)
    x[1000], x[1500], x[2000] = np.nan, np.inf, -np.inf
    x[2500:2600] = 50.0
    rs = StreamResampler(48000, 16000, max_abs=4.0)
    got = _stream(rs, x, np.array([len(x)]))
    repaired = x.copy()
    repaired[1000], repaired[1500], repaired[2000] = 0.0, 1.0, -1.0
    repaired[2500:2600] = 4.0
    want = np.clip(resample_poly(repaired, 1, 3), -4.0, 4.0)
    assert np.all(np.isfinite(got)) and np.max(np.abs(got)) <= 4.0
    np.testing.assert_allclose(got, want[: len(got)], atol=1e-12)


def test_no_allocation_per_block() -> None:
    rs = StreamResampler(44100, 16000, max_abs=4.0)
    ring = np.zeros(1024)
    x = np.random.default_rng(0).standard_normal(44100).astype(np.float32)
    pos = rs.push(x[:512], ring, 0)  # first call: dispatch caches
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(1, 80):
            pos = rs.push(x[i * 512 : (i + 1) * 512], ring, pos)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 1024, after - before


def test_rates_are_checked_and_reduced() -> None:
    assert reduced_ratio(48000, 16000) == (1, 3)
    assert reduced_ratio(44100, 16000) == (160, 441)
    with pytest.raises(ValueError, match="sample rates"):
        reduced_ratio(0, 16000)
    with pytest.raises(ValueError, match="nothing to resample"):
        StreamResampler(16000, 16000, max_abs=4.0)
