"""The proxy's envelope inputs: the synth's own envelopes and moved cutoff, at the snapshot frames."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agents.proxy.encoding import envelope_inputs, log_level
from agents.proxy.model import Proxy
from agents.proxy.train import snapshot_times_s, train
from features.config import FeatureSettings
from features.names import DESCRIPTOR_NAMES
from synth.dsp.envelope import adsr
from synth.params import PARAM_NAMES, param, to_values

TIMES = (0.0, 0.01, 0.032, 0.064, 0.3)


def test_envelope_inputs_are_the_synths_envelopes_and_cutoff() -> None:
    rng = np.random.default_rng(0)
    params = rng.random((64, 24)).astype(np.float32)
    params[:8, PARAM_NAMES.index("amp_attack")] = 0.0  # 1 ms: past the attack at every time but 0
    values = torch.from_numpy(to_values(params).astype(np.float32))
    col = {n: values[:, i] for i, n in enumerate(PARAM_NAMES)}
    t = torch.tensor(TIMES)
    amp = adsr(t, col["amp_attack"], col["amp_decay"], col["amp_sustain"], col["amp_release"], None)
    mod = adsr(t, col["mod_attack"], col["mod_decay"], col["mod_sustain"], col["mod_release"], None)
    cutoff_hz = col["filter_cutoff"].unsqueeze(1) * torch.exp2(col["filter_env_amount"].unsqueeze(1) * mod)
    spec = param("filter_cutoff")
    cutoff_0to1 = (torch.log(cutoff_hz / spec.low) / math.log(spec.high / spec.low)).clamp(0.0, 1.0)
    x = envelope_inputs(torch.from_numpy(params), TIMES)
    n = len(TIMES)
    assert x.shape == (64, 3 * n)
    torch.testing.assert_close(x[:, :n], log_level(amp), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x[:, n : 2 * n], mod * 2 - 1, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x[:, 2 * n :], cutoff_0to1 * 2 - 1, rtol=1e-4, atol=1e-4)
    assert float(x[:8, 1:n].min()) > -1.0  # amp past a 1 ms attack is audible at every later time


def test_snapshot_times_are_the_summarized_frames_centres() -> None:
    target = {"sample_rate_hz": 16000, "probe_s": 0.1, "summary_frames": 2, "features": FeatureSettings().__dict__}
    assert snapshot_times_s(target) == pytest.approx((0.032, 0.064))
    assert snapshot_times_s(target | {"summary_frames": 0})[0] == 0.0  # all frames, clipped at 0


def test_training_widens_an_init_with_envelope_inputs_and_refuses_other_times() -> None:
    rng = np.random.default_rng(1)
    params = rng.random((600, 24)).astype(np.float32)
    notes = rng.integers(36, 85, 600).astype(np.float32)
    descriptors = rng.normal(size=(600, len(DESCRIPTOR_NAMES))) + 5.0
    torch.manual_seed(0)
    init = Proxy(DESCRIPTOR_NAMES, hidden=(8,), log_levels=True)
    common = {"hidden": (8,), "epochs": 1, "batch_size": 64, "lr": 1e-9, "max_minutes": 1.0, "val_fraction": 0.1}
    proxy, _ = train(params, notes, descriptors, seed=0, progress=False, init=init, envelope_times_s=(0.032,), **common)
    assert proxy.envelope_times_s == (0.032,) and proxy.n_inputs == init.n_inputs + 3
    with torch.no_grad():  # zero columns for the new inputs, a negligible learning rate: init's function
        p, k = torch.from_numpy(params[:16]), torch.from_numpy(notes[:16])
        torch.testing.assert_close(proxy.predict(p, k), init.predict(p, k), rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="envelope inputs"):
        train(params, notes, descriptors, seed=0, progress=False, init=proxy, envelope_times_s=(0.5,), **common)
