"""features.normalization: statistics from data, JSON round trip, minmax / zscore in numpy and torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from features.names import DESCRIPTOR_NAMES
from features.normalization import DescriptorStats, StatsError


def _data() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, len(DESCRIPTOR_NAMES))) * np.arange(1, 38) + np.arange(37) * 10
    x[::200, 3] = 1e6  # 0.5 % outliers do not move the robust range
    x[7, 5] = np.nan
    x[9, 6] = np.inf
    x[:, 36] = 0.5  # a constant column
    return x


def test_statistics_are_right_and_robust() -> None:
    x = _data()
    st = DescriptorStats.from_data(x)
    assert st.names == DESCRIPTOR_NAMES
    assert st.count[5] == 4999 and st.count[6] == 4999 and st.count[0] == 5000
    assert st.mean[0] == pytest.approx(np.mean(x[:, 0]))
    assert st.std[1] == pytest.approx(np.std(x[:, 1]))
    assert st.robust_min[2] == pytest.approx(np.percentile(x[:, 2], 1))
    assert st.robust_max[3] < 100  # the outliers stay beyond the 99th percentile
    y = st.normalize(x)
    inside = (x[:, 0] >= st.robust_min[0]) & (x[:, 0] <= st.robust_max[0])
    assert np.all((y[inside, 0] >= 0) & (y[inside, 0] <= 1))
    assert np.mean(inside) == pytest.approx(0.98, abs=0.01)
    assert np.all(np.isfinite(y[:, 36]))  # constant column: no division by zero
    z = st.normalize(x, "zscore")
    assert np.nanmean(z[:, 1]) == pytest.approx(0.0, abs=1e-9) and np.std(z[:, 1]) == pytest.approx(1.0)
    assert np.all(st.normalize(x, clip=True)[np.isfinite(x)] <= 1.0)


def test_round_trips_numpy_torch_and_json(tmp_path: Path) -> None:
    st = DescriptorStats.from_data(_data())
    x = _data()[:10]
    np.testing.assert_allclose(st.denormalize(st.normalize(x)), x, rtol=1e-9)
    t = torch.tensor(np.nan_to_num(x), dtype=torch.float32)
    torch.testing.assert_close(
        st.normalize(t, "zscore"), torch.tensor(st.normalize(np.nan_to_num(x), "zscore"), dtype=torch.float32)
    )
    path = tmp_path / "stats.json"
    st.save(path)
    doc = json.loads(path.read_text())
    assert doc["descriptors"]["centroid"].keys() == {"mean", "std", "robust_min", "robust_max", "count"}
    back = DescriptorStats.load(path)
    assert back.names == st.names
    np.testing.assert_allclose(back.normalize(x), st.normalize(x))


def test_subset_keeps_values_in_the_given_order() -> None:
    st = DescriptorStats.from_data(_data())
    sub = st.subset(["pitch_hz", "loudness_db"])
    assert sub.names == ("pitch_hz", "loudness_db")
    assert sub.mean[1] == st.mean[0] and sub.robust_max[0] == st.robust_max[35]
    with pytest.raises(StatsError, match="no statistics for"):
        sub.subset(["centroid"])
    with pytest.raises(StatsError, match="last axis has 37"):
        sub.normalize(np.zeros((2, 37)))


def test_bad_files_and_data_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(StatsError, match=r"bad\.json: not valid JSON"):
        DescriptorStats.load(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something"}))
    with pytest.raises(StatsError, match=r"other\.json: not descriptor statistics"):
        DescriptorStats.load(other)
    with pytest.raises(StatsError, match="no finite values"):
        DescriptorStats.from_data(np.full((3, 2), np.nan), names=["centroid", "spread"])
    with pytest.raises(StatsError, match="unknown descriptor names"):
        DescriptorStats.from_data(np.zeros((3, 1)), names=["brightness"])
