"""The pickle-free model format and the numpy policy."""

from __future__ import annotations

import itertools
import pickle
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from agents.policy import MODEL_YAML, POLICY_FILE, ModelError, NumpyPolicy, load_model, write_model_dir
from synth.params import PARAM_NAMES, default_vector


def _weights(sizes: list[int], seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(0, 0.3, (o, i)).astype(np.float32), rng.normal(0, 0.1, o).astype(np.float32))
        for i, o in itertools.pairwise(sizes)
    ]


META = {
    "task": "imitate",
    "algorithm": "sac",
    "controlled_params": ["filter_cutoff", "osc1_wave"],
    "descriptor_names": ["loudness_db", "centroid"],
    "observation": {"layout": ["agent", "target", "params"]},
    "action": {"kind": "continuous", "delta_max": 0.05},
    "start_preset": default_vector().tolist(),
}


def test_numpy_policy_matches_torch() -> None:
    ws = _weights([6, 16, 16, 2])
    layers: list[torch.nn.Module] = []
    for i, (w, b) in enumerate(ws):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        lin.weight.data = torch.from_numpy(w)
        lin.bias.data = torch.from_numpy(b)
        layers += [lin] + ([torch.nn.ReLU()] if i < len(ws) - 1 else [torch.nn.Tanh()])
    net = torch.nn.Sequential(*layers)
    pol = NumpyPolicy(ws)
    obs = np.random.default_rng(3).normal(size=(20, 6)).astype(np.float32)
    expected = net(torch.from_numpy(obs)).detach().numpy()
    got = np.stack([pol.act(o).copy() for o in obs])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_act_does_not_allocate_in_steady_state() -> None:
    pol = NumpyPolicy(_weights([40, 256, 256, 24]))
    obs = np.zeros(40, dtype=np.float32)
    pol.act(obs)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(200):
        pol.act(obs)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    assert grown < 2048, f"policy allocated {grown} bytes over 200 calls"


def test_updown_output() -> None:
    w = np.zeros((6, 2), dtype=np.float32)
    b = np.array([0, 0, 5, 5, 0, 0, 0, 5, 0], dtype=np.float32)[:6]
    pol = NumpyPolicy([(w, b)], output="updown")
    np.testing.assert_array_equal(pol.act(np.zeros(2, dtype=np.float32)), [1.0, -1.0])


def test_round_trip_model_dir(tmp_path: Path) -> None:
    ws = _weights([4 + 2, 8, 2])
    write_model_dir(tmp_path / "m", META, ws)
    model = load_model(tmp_path / "m")
    assert model.meta["observation"]["size"] == 6 and model.meta["action"]["size"] == 2
    assert model.meta["param_order"] == list(PARAM_NAMES)
    assert model.controlled_indices == (9, 0)
    obs = np.ones(6, dtype=np.float32)
    np.testing.assert_allclose(model.policy.act(obs), NumpyPolicy(ws).act(obs))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return write_model_dir(tmp_path / "m", META, _weights([6, 8, 2]))


def _edit_yaml(d: Path, **changes: object) -> None:
    meta = yaml.safe_load((d / MODEL_YAML).read_text())
    meta.update(changes)
    (d / MODEL_YAML).write_text(yaml.safe_dump(meta))


def test_missing_dir_and_files(tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(ModelError, match="nope: model directory not found"):
        load_model(tmp_path / "nope")
    (model_dir / POLICY_FILE).unlink()
    with pytest.raises(ModelError, match="policy weights not found"):
        load_model(model_dir)


def test_pickle_is_never_loaded(model_dir: Path) -> None:
    (model_dir / POLICY_FILE).write_bytes(pickle.dumps({"actor.0.weight": np.zeros(3)}))
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        load_model(model_dir)


def test_bad_yaml_and_keys(model_dir: Path) -> None:
    (model_dir / MODEL_YAML).write_text("task: [\n")
    with pytest.raises(ModelError, match="not valid YAML"):
        load_model(model_dir)
    (model_dir / MODEL_YAML).write_text("task: imitate\n")
    with pytest.raises(ModelError, match="missing key"):
        load_model(model_dir)


def test_other_parameter_table_is_refused(model_dir: Path) -> None:
    _edit_yaml(model_dir, param_order=list(reversed(PARAM_NAMES)))
    with pytest.raises(ModelError, match="parameter table"):
        load_model(model_dir)


def test_shape_mismatch_is_named(model_dir: Path) -> None:
    _edit_yaml(model_dir, observation={"size": 7})
    with pytest.raises(ModelError, match=r"weights map 6 -> 2, model.yaml says observation 7"):
        load_model(model_dir)


def test_bad_start_preset_and_controlled(model_dir: Path) -> None:
    _edit_yaml(model_dir, start_preset=[0.5] * 23)
    with pytest.raises(ModelError, match="start_preset"):
        load_model(model_dir)
    _edit_yaml(model_dir, start_preset=[0.5] * 24, controlled_params=["cutoff"])
    with pytest.raises(ModelError, match="unknown parameter"):
        load_model(model_dir)
