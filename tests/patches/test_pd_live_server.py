"""End to end in RL-impro's mode, every piece real: serumlite_features.pd (test tone) ->
`/agent/features` -> `live_server.py --input osc` (a hand-written model on the patch's four
descriptors) -> `/serumlite/params` -> serumlite.pd -> echo helper -> this test."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from agents.policy import write_model_dir
from patches import features_pd, serumlite_pd
from server.osc_protocol import PD_FEATURE_NAMES
from synth.params import N_PARAMS, PARAM_INDEX, default_vector
from tests.patches.pd_harness import EchoListener, echo_helper, free_udp_ports, pd_errors

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.realtime, pytest.mark.slow, pytest.mark.timeout(120)]


def write_level_model(model_dir: Path) -> Path:
    """One linear layer: master_volume moves with the input's rms_db (the first descriptor)."""
    k, p = len(PD_FEATURE_NAMES), 1
    weights = np.zeros((p, 2 * k + p), dtype=np.float32)
    weights[0, 0] = -20.0
    meta = {
        "task": "imitate",
        "algorithm": "hand-written",
        "controlled_params": ["master_volume"],
        "descriptor_names": list(PD_FEATURE_NAMES),
        "normalization": {
            "rms_db": {"low": -80.0, "high": 0.0},
            "centroid": {"low": 0.0, "high": 8000.0},
            "pitch_hz": {"low": 0.0, "high": 2000.0},
            "pitch_confidence": {"low": 0.0, "high": 1.0},
        },
        "observation": {"history": 0},
        "action": {"kind": "continuous", "delta_max": 0.05},
        "start_preset": [float(v) for v in default_vector()],
        "tick_s": 0.02,
    }
    return write_model_dir(model_dir, meta, [(weights, np.zeros(p, dtype=np.float32))], output="tanh")


@pytest.fixture
def echo() -> Iterator[EchoListener]:
    listener = EchoListener()
    yield listener
    listener.close()


def test_features_patch_drives_the_live_server_which_drives_serumlite_pd(
    run_pd: Callable, echo: EchoListener, tmp_path: Path
) -> None:
    server_port, pd_port = free_udp_ports(2)
    model = write_level_model(tmp_path / "level_model")
    stats_path = tmp_path / "stats.json"
    pd = run_pd(
        {
            "serumlite_features.pd": features_pd.build("127.0.0.1", server_port),
            "serumlite.pd": serumlite_pd.build(pd_port, "127.0.0.1", server_port),
            "echo.pd": echo_helper(echo.port),
        },
        sends=["sl-features-tone 1", "sl-features-tone-hz 440"],
    )
    command = [sys.executable, "live_server.py", "--model", str(model), "--input", "osc", "--output", "osc"]
    command += ["--osc-port", str(server_port), "--osc-send-port", str(pd_port), "--duration", "1.5"]
    command += ["--stats-json", str(stats_path), "--quiet"]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=90)
    log = pd.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    assert pd_errors(log) == [], log
    stats = json.loads(stats_path.read_text())
    assert stats["external_feature_frames"] > 30, stats  # ~94 hops/s from Pd for 1.5 s
    assert stats["osc_rejected"] == 0 and stats["osc_rejected_by_reason"]["bad_features"] == 0, stats
    frames = [m.params for m in list(echo.messages) if m.address == "/echo/params"]
    assert len(frames) > 30, len(frames)  # the server's ticks reached Pd's [s sl-<name>]
    frames_0to1 = np.array(frames, dtype=np.float32)
    assert frames_0to1.shape[1] == N_PARAMS and np.all((frames_0to1 >= 0) & (frames_0to1 <= 1))
    volume = frames_0to1[:, PARAM_INDEX["master_volume"]]
    assert np.ptp(volume) > 0.1, volume  # the model moved the one parameter it controls
    others = np.delete(frames_0to1, PARAM_INDEX["master_volume"], axis=1)
    np.testing.assert_allclose(others, others[:1].repeat(len(others), axis=0), atol=1e-6)
