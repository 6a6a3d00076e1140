"""features.loss: zero on identical audio, monotone in detuning and filter closing, penalties, caching.

Speed (B=64 renders against a cached target) is measured by benchmarks/features.py, not here.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from features.config import FeatureSettings, LossSettings
from features.loss import BestSoFar, PerceptualLoss
from tests.features.signals import harmonic, noise

SR = 16000


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.asarray(x), dtype=torch.float32)


@pytest.fixture(scope="module")
def loss() -> PerceptualLoss:
    return PerceptualLoss(LossSettings(), FeatureSettings(), SR)


def test_zero_for_identical_audio(loss: PerceptualLoss) -> None:
    x = _t(np.stack([harmonic(220.0, 0.5, SR), noise(0.5, SR), np.zeros(8000), np.full(8000, 0.3)]))
    terms = loss(x, x)
    for name, value in terms.as_dict().items():
        assert value.shape == (4,)
        assert torch.all(value.abs() < 1e-4), (name, value)


def test_grows_monotonically_as_a_tone_is_detuned(loss: PerceptualLoss) -> None:
    target = harmonic(220.0, 0.5, SR)
    cents = [0, 10, 30, 100, 300, 700]
    renders = _t(np.stack([harmonic(220.0 * 2 ** (c / 1200), 0.5, SR) for c in cents]))
    terms = loss(renders, _t(target))
    total = terms.total.numpy()
    assert total[0] < 1e-4 and np.all(np.diff(total) > 0), total
    assert np.all(np.diff(terms.mr_stft.numpy()) > 0)


def test_grows_monotonically_as_a_lowpass_closes(loss: PerceptualLoss) -> None:
    target = harmonic(110.0, 0.5, SR, n_harmonics=60)
    renders = [target]
    for cutoff in (6000.0, 3000.0, 1500.0, 700.0, 300.0):
        sos = scipy.signal.butter(4, cutoff, fs=SR, output="sos")
        renders.append(scipy.signal.sosfilt(sos, target))
    terms = loss(_t(np.stack(renders)), _t(target))
    for name in ("total", "mr_stft", "centroid"):
        values = getattr(terms, name).numpy()
        assert np.all(np.diff(values) > 0), (name, values)


def test_penalties_fire_on_dc_and_clipping(loss: PerceptualLoss) -> None:
    clean = harmonic(220.0, 0.5, SR, amp=0.5)
    dc = clean + 0.3
    clipped = np.clip(4 * clean, -1.0, 1.0)
    over = 3 * clean  # beyond full scale, unclipped
    terms = loss(_t(np.stack([clean, dc, clipped, over])), _t(clean))
    assert terms.dc[0] < 1e-6 and terms.dc[1] == pytest.approx(0.3, rel=0.01)
    assert terms.clip[0] < 1e-6 and terms.clip[2] > 0.1 and terms.clip[3] > 0.1
    assert terms.dc[2] < 1e-3
    # the target's own DC / clipping is not held against a render that matches it
    assert loss(_t(dc)[None], _t(dc)).dc[0] < 1e-6
    assert loss(_t(clipped)[None], _t(clipped)).clip[0] < 1e-6


def test_loudness_normalization_ignores_gain() -> None:
    norm = PerceptualLoss(LossSettings(normalize_loudness=True), FeatureSettings(), SR)
    plain = PerceptualLoss(LossSettings(), FeatureSettings(), SR)
    target = harmonic(220.0, 0.5, SR, amp=0.5)
    quiet = _t(0.1 * target)[None]
    n, p = norm(quiet, _t(target)), plain(quiet, _t(target))
    assert n.loudness[0] == pytest.approx(p.loudness[0]) and n.loudness[0] > 10  # still reported
    assert n.mr_stft[0] < 0.01 < p.mr_stft[0]
    assert n.mfcc[0] < 0.05 < p.mfcc[0]


def test_cached_target_equals_forward_and_broadcasts(loss: PerceptualLoss) -> None:
    target = _t(harmonic(220.0, 0.5, SR))
    renders = _t(np.stack([harmonic(f, 0.5, SR) for f in (200.0, 220.0, 260.0)]))
    cached = loss.prepare_target(target)
    a = loss.compare(renders, cached)
    b = loss(renders, target.expand(3, -1))
    for name in a.as_dict():
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="samples"):
        loss.compare(renders[:, :4000], cached)


def test_gradient_flows_and_is_finite(loss: PerceptualLoss) -> None:
    target = loss.prepare_target(_t(harmonic(220.0, 0.5, SR)))
    render = _t(np.stack([harmonic(250.0, 0.5, SR), np.zeros(8000)])).requires_grad_(True)
    loss.compare(render, target).total.sum().backward()
    assert render.grad is not None and torch.all(torch.isfinite(render.grad)) and render.grad.abs().sum() > 0


def test_nan_render_gives_a_finite_loss(loss: PerceptualLoss) -> None:
    render = torch.full((2, 8000), float("nan"))
    terms = loss(render, _t(harmonic(220.0, 0.5, SR)))
    assert all(torch.all(torch.isfinite(v)) for v in terms.as_dict().values())


def test_best_so_far_bonus() -> None:
    tracker = BestSoFar(3)
    np.testing.assert_array_equal(tracker.update(np.array([5.0, 4.0, 3.0])), [0, 0, 0])
    np.testing.assert_allclose(tracker.update(np.array([4.0, 4.5, np.nan])), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(tracker.best, [4.0, 4.0, 3.0])
    tracker.reset(np.array([True, False, False]), initial=10.0)
    np.testing.assert_allclose(tracker.update(torch.tensor([6.0, 1.0, 3.0])), [4.0, 3.0, 0.0])
    with pytest.raises(ValueError, match="shape"):
        tracker.update(np.zeros(2))


def test_chunked_compare_equals_one_pass(loss: PerceptualLoss, monkeypatch: pytest.MonkeyPatch) -> None:
    from features import batch

    renders = _t(np.stack([harmonic(200.0 + 7 * i, 0.5, SR) for i in range(6)]))
    targets = _t(np.stack([harmonic(220.0 + 3 * i, 0.5, SR) for i in range(6)]))
    for target in (loss.prepare_target(targets[0]), loss.prepare_target(targets)):
        monkeypatch.setattr(batch, "CHUNK_FRAMES", 10_000)
        whole = loss.compare(renders, target)
        monkeypatch.setattr(batch, "CHUNK_FRAMES", 20)  # one row (15 frames) per chunk
        assert len(batch.row_chunks(6, 15)) == 6
        chunked = loss.compare(renders, target)
        for name in whole.as_dict():
            torch.testing.assert_close(getattr(chunked, name), getattr(whole, name), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="batch 6"):
        loss.compare(renders[:4], loss.prepare_target(targets))


def _mixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Renders covering the corner cases (identical, silent, DC, clipped, over full scale, noise) and targets."""
    tone = harmonic(220.0, 0.5, SR, amp=0.5)
    renders = np.stack(
        [tone, np.zeros(8000), tone + 0.3, np.clip(4 * tone, -1, 1), 3 * tone, noise(0.5, SR), harmonic(300.0, 0.5, SR)]
    )
    targets = np.stack([tone, tone, tone, tone, np.clip(4 * tone, -1, 1), harmonic(110.0, 0.5, SR), noise(0.5, SR)])
    return _t(renders), _t(targets)


@pytest.mark.parametrize("normalize", [False, True])
def test_gradient_free_path_matches_the_differentiable_one(normalize: bool) -> None:
    loss = PerceptualLoss(LossSettings(normalize_loudness=normalize), FeatureSettings(), SR)
    renders, targets = _mixed_batch()
    for target in (targets, targets[:1]):
        with torch.no_grad():  # numba path
            fast = loss.compare(renders, loss.prepare_target(target))
        with torch.enable_grad():  # torch path (a render that wants a gradient)
            slow = loss(renders.clone().requires_grad_(True), target)
        assert loss._fast_path(renders, loss.prepare_target(target))
        for name in fast.as_dict():  # atol: a term that cancels to ~0 (3 x tone against tone, loudness-normalized)
            # keeps float32 rounding of its O(50) parts (1.6e-5 against 1.4e-5 on an Intel AVX-512 host)
            torch.testing.assert_close(getattr(fast, name), getattr(slow, name).detach(), rtol=2e-5, atol=1e-5)
    with torch.no_grad():
        same = loss.compare(renders[:1], loss.prepare_target(renders[:1]))
    assert all(float(v[0]) < 1e-7 for v in same.as_dict().values()), same  # identical audio: ~0 on both paths


def test_given_frames_give_the_same_loss(loss: PerceptualLoss) -> None:
    from features import batch

    renders, targets = _mixed_batch()
    target = loss.prepare_target(targets)
    frames = batch.analyze_frames(renders, SR, FeatureSettings())
    for grad in (False, True):  # the numba path, then the torch path
        r = renders.clone().requires_grad_(grad)
        assert loss._fast_path(r, target) != grad
        own = loss.compare(r, target)
        given = loss.compare(r, target, frames=frames)  # analyze_frames' own FFT: the same to FFT rounding
        shared = loss.compare(r, target, analysis=loss.analyze(r))  # exactly what compare computes
        for name in own.as_dict():
            # given frames come from torch's FFT, the target's (prepared without gradient) from numba's:
            # FFT rounding moves the MFCC term of identical audio (mean |d| of cepstra in dB) by ~1e-5
            torch.testing.assert_close(getattr(given, name), getattr(own, name), rtol=1e-5, atol=5e-5)
            assert torch.equal(getattr(own, name), getattr(shared, name)), name
    with pytest.raises(ValueError, match="frames"):
        loss.compare(renders[:3], loss.prepare_target(targets[:3]), frames=frames)
    with pytest.raises(ValueError, match="frames"):
        loss.compare(renders[:3], loss.prepare_target(targets[:3]), analysis=loss.analyze(renders))


def test_analysis_frames_are_the_analyze_frames_of_the_renders(loss: PerceptualLoss) -> None:
    """The observation's frames come from the loss's 1024-point STFT: analyze_frames' values to FFT rounding."""
    from features import batch

    renders, _ = _mixed_batch()
    with torch.no_grad():
        analysis = loss.analyze(renders)
        frames = batch.analyze_frames(renders, SR, FeatureSettings())
    assert analysis.frames.power.shape == frames.power.shape
    assert analysis.spectra[0] is None and analysis.spectra[2] is None  # computed (and scored) by compare
    assert analysis.spectra[1] is not None and analysis.spectra[1].shape == (7, 32, 513)  # the 1024 STFT
    scale = frames.power.amax((-1, -2), keepdim=True) + 1e-12
    assert ((analysis.frames.power - frames.power).abs() / scale).max() < 1e-6
    torch.testing.assert_close(analysis.frames.frames, frames.frames, rtol=0, atol=0)
    torch.testing.assert_close(analysis.mel_power, frames.power @ frames.const.mel_t, rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(analysis.loudness_lufs, batch.clip_loudness_frames(frames), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(analysis.centroid_hz, batch.spectral_shape(frames)[..., 0], rtol=1e-4, atol=1e-2)
