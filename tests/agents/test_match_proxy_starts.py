"""The hybrid agent's extra starts from the neural proxy (`agents.match.proxy_starts`, real synth and
the match agent's own proxy, `models/match_dagger/proxy`): the target's snapshot, what the candidates
vary, and that the proxy's picks find a target's oscillator waves far more often than chance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agents.imitate.sound import RenderDescriber
from agents.match.curriculum import active_mask, held_out_presets, start_vectors
from agents.match.probe import ProbeRenderer
from agents.match.proxy_starts import OSC_SECTION, proxy_snapshot, proxy_starts
from agents.proxy import Proxy
from features.config import FeatureSettings
from settings import load_settings
from synth.params import PARAM_INDEX

PROXY_DIR = Path(__file__).resolve().parents[2] / "models" / "match_dagger" / "proxy"  # the match agent's own


@pytest.fixture(scope="module")
def proxy() -> Proxy:
    return Proxy.load(PROXY_DIR)


def _snapshot_of_renders(proxy: Proxy, targets: np.ndarray, note: float) -> np.ndarray:
    target = proxy.meta["target"]
    describer = RenderDescriber(load_settings().synth, FeatureSettings(**target["features"]), target["probe_s"])
    from features.names import INDEX

    full = describer.describe(targets, np.full(len(targets), note, np.float32), np.ones(len(targets), bool))
    return full[:, [INDEX[n] for n in proxy.descriptor_names]]


def test_the_snapshot_of_a_probe_is_the_proxys_own_target(proxy: Proxy) -> None:
    """The first 0.1 s of a 0.5 s probe analyse as a 0.1 s render does (what the proxy learned)."""
    torch.set_num_threads(1)
    settings = load_settings()
    targets = held_out_presets(6, settings.match.eval_seed)
    targets[:, PARAM_INDEX["noise_level"]] = 0.0  # noise streams differ between render lengths
    audio = ProbeRenderer(settings)(torch.from_numpy(targets))
    got = proxy_snapshot(proxy, audio, settings.synth.sample_rate_hz, settings.match.probe_note_off_s)
    want = _snapshot_of_renders(proxy, targets, float(settings.synth.default_note))
    assert got.shape == (6, len(proxy.descriptor_names))
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


def test_snapshot_rejects_a_probe_that_cannot_give_it(proxy: Proxy) -> None:
    audio = torch.zeros(2, 8000)
    with pytest.raises(ValueError, match="trained at 16000 Hz, the probe renders at 48000 Hz"):
        proxy_snapshot(proxy, audio, 48_000, None)
    with pytest.raises(ValueError, match="note off at 0.05 s"):
        proxy_snapshot(proxy, audio, 16_000, 0.05)
    with pytest.raises(ValueError, match="800 frames"):
        proxy_snapshot(proxy, audio[:, :800], 16_000, None)


def test_candidates_vary_only_the_oscillator_section_and_are_seeded(proxy: Proxy) -> None:
    settings = load_settings()
    targets = held_out_presets(3, settings.match.eval_seed)
    patches = start_vectors(targets, 3)  # held parameters are the target's
    wanted = _snapshot_of_renders(proxy, targets, 60.0)
    a = proxy_starts(proxy, wanted, patches, 60.0, 4, 512, np.random.default_rng(1))
    b = proxy_starts(proxy, wanted, patches, 60.0, 4, 512, np.random.default_rng(1))
    c = proxy_starts(proxy, wanted, patches, 60.0, 4, 512, np.random.default_rng(2))
    assert a.shape == (3, 4, 24) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    others = np.setdiff1d(np.arange(24), OSC_SECTION)
    np.testing.assert_array_equal(a[:, :, others], np.repeat(patches[:, None, others], 4, axis=1))
    assert set(OSC_SECTION) == set(np.flatnonzero(active_mask(1)))
    assert ((a >= 0) & (a <= 1)).all() and len(np.unique(a[:, :, OSC_SECTION[0]])) == 12
    with pytest.raises(ValueError, match="k=0"):
        proxy_starts(proxy, wanted, patches, 60.0, 0, 512, np.random.default_rng(1))
    with pytest.raises(ValueError, match="do not pair up"):
        proxy_starts(proxy, wanted[:2], patches, 60.0, 1, 512, np.random.default_rng(1))


def test_the_proxys_first_pick_finds_the_waves_far_more_often_than_chance(proxy: Proxy) -> None:
    """Stage-1 targets, neutral oscillator section: the best of 4,096 random settings by the proxy
    has osc1's wave within 0.15 of the target's about twice as often as a random setting (~27%)."""
    torch.set_num_threads(1)
    settings = load_settings()
    targets = held_out_presets(24, settings.match.eval_seed)
    audio = ProbeRenderer(settings)(torch.from_numpy(targets))
    wanted = proxy_snapshot(proxy, audio, settings.synth.sample_rate_hz, settings.match.probe_note_off_s)
    picks = proxy_starts(
        proxy, wanted, start_vectors(targets, 1), settings.synth.default_note, 1, 4096, np.random.default_rng(0)
    )
    wave = PARAM_INDEX["osc1_wave"]
    hit = np.abs(picks[:, 0, wave] - targets[:, wave]) < 0.15
    assert hit.mean() >= 0.45, hit.mean()  # 13 of 24 here


def test_an_error_head_of_constant_scales_picks_as_the_global_scales_do(proxy: Proxy) -> None:
    """With the error head, candidates are ranked by the target's Laplace NLL under their own predicted
    scales; a head that predicts the global scales everywhere (its initial state) must rank the same."""
    from agents.proxy.error_head import ErrorHead

    rng = np.random.default_rng(3)
    patches = rng.random((3, 24)).astype(np.float32)
    with torch.no_grad():
        wanted = proxy.predict(torch.from_numpy(rng.random((3, 24)).astype(np.float32)), torch.full((3,), 60.0))
    head = ErrorHead(
        proxy.n_inputs, len(proxy.descriptor_names), (4,), init_scale_z=proxy.error_scale_z, kind="laplace"
    )
    plain = proxy_starts(proxy, wanted.double().numpy(), patches, 60.0, 3, 256, np.random.default_rng(1))
    headed = proxy_starts(proxy, wanted.double().numpy(), patches, 60.0, 3, 256, np.random.default_rng(1), head)
    np.testing.assert_array_equal(headed, plain)
    # a Gaussian head of the same constant scales ranks by the scaled squared error instead
    gauss = ErrorHead(proxy.n_inputs, len(proxy.descriptor_names), (4,), init_scale_z=proxy.error_scale_z)
    squared = proxy_starts(proxy, wanted.double().numpy(), patches, 60.0, 3, 256, np.random.default_rng(1), gauss)
    trial_rng = np.random.default_rng(1)
    std, scale = proxy.out_std.double().numpy(), proxy.error_scale_z
    for row in range(3):
        trial = np.repeat(patches[row][None], 256, axis=0)
        trial[:, OSC_SECTION] = trial_rng.random((256, len(OSC_SECTION)), dtype=np.float32)
        with torch.no_grad():
            pred = proxy.predict(torch.from_numpy(trial), torch.full((256,), 60.0)).double().numpy()
        dist = (((pred - wanted[row].double().numpy()) / (std * scale)) ** 2).sum(1)
        np.testing.assert_array_equal(squared[row], trial[np.argsort(dist)[:3]])
