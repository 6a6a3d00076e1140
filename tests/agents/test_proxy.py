"""The neural proxy: API, pickle-free save/load, gradients, MRR, training, and the shipped model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.proxy import Proxy, ProxyError
from agents.proxy.encoding import LOG_LEVEL_NAMES
from agents.proxy.error_head import load_error_head
from agents.proxy.evaluate import evaluate, mean_reciprocal_rank
from agents.proxy.kernels import silu_rows
from agents.proxy.model import N_LOG_INPUTS, rotate_chroma
from agents.proxy.train import train
from features.config import FeatureSettings
from features.names import DESCRIPTOR_NAMES, GROUPS
from synth.lookup_store import TablePlan, build_table, load_table
from synth.params import PARAM_NAMES, default_vector

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "proxy"


def synthetic_table(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth params -> 'descriptors' map standing in for renders (the learner's job in miniature)."""
    rng = np.random.default_rng(seed)
    params = rng.random((n, 24)).astype(np.float32)
    notes = rng.integers(36, 85, n).astype(np.float32)
    w = np.random.default_rng(99).normal(size=(25, len(DESCRIPTOR_NAMES)))
    x = np.column_stack([params, (notes - 60) / 24])
    descriptors = np.tanh(x @ w / 3.0) * 10.0 + 100.0
    return params, notes, descriptors


def test_predict_shapes_units_and_gradients() -> None:
    proxy = Proxy(DESCRIPTOR_NAMES, hidden=(16,), out_mean=torch.full((37,), 5.0), out_std=torch.full((37,), 2.0))
    params = torch.rand(3, 24, requires_grad=True)
    out = proxy.predict(params, torch.tensor([48.0, 60.0, 72.0]))
    assert out.shape == (3, len(DESCRIPTOR_NAMES)) and proxy.descriptor_names == DESCRIPTOR_NAMES
    torch.testing.assert_close(out, proxy.predict_normalized(params, torch.tensor([48.0, 60.0, 72.0])) * 2 + 5)
    out.sum().backward()
    assert params.grad is not None and params.grad.abs().sum() > 0  # a differentiable stand-in
    with pytest.raises(ValueError, match=r"\[B, 24\]"):
        proxy.predict(torch.rand(3, 23), torch.zeros(3))
    with pytest.raises(ValueError, match="notes"):
        proxy.predict(torch.rand(3, 24), torch.zeros(2))


@pytest.mark.parametrize(
    ("head", "log_levels", "envelope"),
    [("direct", False, ()), ("rotate", False, ()), ("rotate", True, ()), ("rotate", True, (0.0, 0.032, 0.064))],
)
def test_no_grad_fast_path_matches_the_module_and_follows_weight_changes(
    head: str, log_levels: bool, envelope: tuple[float, ...]
) -> None:
    torch.manual_seed(0)
    proxy = Proxy(
        DESCRIPTOR_NAMES,
        hidden=(32, 32),
        out_mean=torch.full((37,), 5.0),
        out_std=torch.full((37,), 2.0),
        chroma_head=head,
        log_levels=log_levels,
        envelope_times_s=envelope,
    )
    params, notes = torch.rand(1200, 24), torch.randint(36, 85, (1200,)).float()  # > one 512-row block
    params[100:200, PARAM_NAMES.index("amp_attack")] = 0.0  # envelopes past their attack at the snapshot
    params[:, PARAM_NAMES.index("osc2_fine")] = torch.rand(1200)  # oscillator 2 between semitones
    params[:100, PARAM_NAMES.index("noise_level")] = 0.0  # the log levels' floor
    slow = proxy.predict(params, notes).detach()
    with torch.inference_mode():
        fast = proxy.predict(params, notes)
        one = proxy.predict(params[:1], notes[:1])  # tiny batches: the numpy path
        with pytest.raises(ValueError, match="notes"):
            proxy.predict(params[:2], notes[:3])
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(one, slow[:1], rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        proxy.net[0].weight.mul_(0.5)  # an in-place update (an optimizer step) must not leave a stale cache
        proxy.out_mean.add_(1.0)
        torch.testing.assert_close(proxy.predict(params, notes), proxy.predict_normalized(params, notes) * 2.0 + 6.0)
        expected = proxy.predict_normalized(params[:3], notes[:3]) * 2.0 + 6.0
        torch.testing.assert_close(proxy.predict(params[:3], notes[:3]), expected, rtol=1e-4, atol=1e-4)
    other = Proxy(DESCRIPTOR_NAMES, hidden=(32, 32), chroma_head=head, log_levels=log_levels, envelope_times_s=envelope)
    other.load_state_dict(proxy.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(other.predict(params, notes), proxy.predict(params, notes))


def test_log_level_inputs_spread_the_quiet_gains() -> None:
    proxy = Proxy(DESCRIPTOR_NAMES, hidden=(4,), log_levels=True)
    params = torch.full((4, 24), 0.5)
    noise = PARAM_NAMES.index("noise_level")
    params[:, noise] = torch.tensor([0.0, 0.001, 0.03, 1.0])
    x = proxy.encode(params, torch.full((4,), 60.0))
    assert x.shape == (4, 24 + 25 + N_LOG_INPUTS) and proxy.net[0].in_features == x.shape[1]
    column = x[:, 24 + 25 + LOG_LEVEL_NAMES.index("noise_level")]
    torch.testing.assert_close(column[[0, 3]], torch.tensor([-1.0, 1.0]))
    assert 0.0 < float(column[1] + 1.0) < 0.25 and abs(float(column[2])) < 0.05  # -60 dB, -30 dB
    torch.testing.assert_close(x[:, noise], params[:, noise] * 2 - 1)  # the linear input stays
    params[:, PARAM_NAMES.index("osc2_wave")] = torch.tensor([0.0, 1 / 3, 2 / 3, 1.0])  # sine, saw, square, triangle
    osc2 = x.shape[1] - N_LOG_INPUTS + len(LOG_LEVEL_NAMES) + 1
    waves = proxy.encode(params, torch.full((4,), 60.0))[:, [osc2, osc2 + 2]]  # harmonics, even harmonics
    torch.testing.assert_close(waves, torch.tensor([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0], [1.0, -1.0]]))
    assert Proxy(DESCRIPTOR_NAMES, hidden=(4,)).encode(params, torch.full((4,), 60.0)).shape[1] == 49


def test_rotate_chroma_rotates_by_the_pitch_and_blends_between() -> None:
    torch.manual_seed(3)
    relative = torch.randn(4, 12)
    rolled = rotate_chroma(relative, torch.tensor([0.0, 5.0, 67.0, -1.0]))
    for row, shift in enumerate([0, 5, 7, 11]):  # pitch 67 is class 7 above 0; -1 is class 11
        torch.testing.assert_close(rolled[row], torch.roll(relative[row], shift))
    between = rotate_chroma(relative, torch.full((4,), 62.25))
    torch.testing.assert_close(between, 0.75 * torch.roll(relative, 2, dims=1) + 0.25 * torch.roll(relative, 3, dims=1))
    pitch_t = torch.tensor([60.4, 61.7], requires_grad=True)
    rotate_chroma(relative[:2], pitch_t).pow(2).sum().backward()
    assert pitch_t.grad is not None and torch.all(pitch_t.grad != 0)  # osc2 fine tuning stays differentiable


def test_silu_kernel_matches_torch_over_the_float32_range() -> None:
    values = np.concatenate(
        [
            np.random.default_rng(2).normal(scale=6.0, size=4093),
            [-1e30, -100.0, -87.5, -20.0, -1e-8, 0.0, 1e-8, 88.5, 100.0, 1e30, 3.0e38],
        ]
    ).astype(np.float32)
    x = values.reshape(-1, 8).copy()
    silu_rows(x)
    expected = torch.nn.functional.silu(torch.from_numpy(values)).numpy().reshape(-1, 8)
    np.testing.assert_allclose(x, expected, rtol=2e-6, atol=1e-30)


def test_rotate_head_transposes_chroma_with_the_note() -> None:
    """With the note's inputs cut off, the network's relative chroma is the same at every note, so a note
    a semitone up rolls the chroma by one bin and leaves every other descriptor alone: the structure the
    head builds in (a transposed sound has a rotated chroma)."""
    torch.manual_seed(1)
    proxy = Proxy(
        DESCRIPTOR_NAMES,
        hidden=(16,),
        out_mean=torch.full((37,), 0.5),
        out_std=torch.full((37,), 2.0),
        chroma_head="rotate",
    )
    with torch.no_grad():
        proxy.net[0].weight[:, 24:] = 0.0  # register and pitch classes
    params = torch.rand(5, 24)
    chroma = [DESCRIPTOR_NAMES.index(name) for name in GROUPS["chroma"]]  # A, A#, ..., G#
    low, high = proxy.predict(params, torch.full((5,), 60.0)), proxy.predict(params, torch.full((5,), 61.0))
    torch.testing.assert_close(high[:, chroma], torch.roll(low[:, chroma], 1, dims=1))
    others = [i for i in range(len(DESCRIPTOR_NAMES)) if i not in chroma]
    torch.testing.assert_close(high[:, others], low[:, others])
    direct = Proxy(DESCRIPTOR_NAMES, hidden=(16,))
    assert direct.net[-1].out_features == 37 and proxy.net[-1].out_features == 37 - 12 + 24
    with pytest.raises(ValueError, match="chroma_head"):
        Proxy(DESCRIPTOR_NAMES, hidden=(4,), chroma_head="spin")
    with pytest.raises(ValueError, match="chroma_A"):
        Proxy(("loudness_db", "chroma_A"), hidden=(4,), chroma_head="rotate")


@pytest.mark.parametrize("head", ["direct", "rotate"])
def test_save_load_round_trip_is_pickle_free(tmp_path: Path, head: str) -> None:
    proxy = Proxy(
        DESCRIPTOR_NAMES,
        hidden=(8, 8),
        out_mean=torch.arange(37.0),
        out_std=torch.ones(37) * 3,
        chroma_head=head,
        log_levels=head == "rotate",
        envelope_times_s=(0.05,) if head == "rotate" else (),
    )
    proxy.save(tmp_path / "p", {"metrics": {"mrr": 0.5}})
    assert sorted(f.name for f in (tmp_path / "p").iterdir()) == ["proxy.safetensors", "proxy.yaml"]
    loaded = Proxy.load(tmp_path / "p")
    x, n = torch.rand(4, 24), torch.tensor([40.0, 50.0, 60.0, 70.0])
    torch.testing.assert_close(loaded.predict(x, n), proxy.predict(x, n))
    assert loaded.meta["metrics"]["mrr"] == 0.5 and loaded.hidden == (8, 8)
    assert loaded.chroma_head == head and loaded.log_levels == (head == "rotate")
    assert loaded.envelope_times_s == ((0.05,) if head == "rotate" else ())
    fast = loaded.predict_numpy(x.numpy(), np.array([40.0, 50.5, 60.0, 70.0], np.float32))
    slow = loaded.predict(x, torch.tensor([40.0, 50.5, 60.0, 70.0])).detach().numpy()
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-4)
    meta_path = tmp_path / "p" / "proxy.yaml"
    text = meta_path.read_text()
    meta_path.write_text(text.replace(f"chroma_head: {head}", "chroma_head: spin"))
    with pytest.raises(ProxyError, match="proxy.yaml.*chroma_head"):
        Proxy.load(tmp_path / "p")
    meta_path.write_text(text.replace(f"chroma_head: {head}\n", ""))  # written before the option: direct
    if head == "direct":
        torch.testing.assert_close(Proxy.load(tmp_path / "p").predict(x, n), proxy.predict(x, n))
    else:
        with pytest.raises(ProxyError, match="weights do not match"):
            Proxy.load(tmp_path / "p")
    (tmp_path / "p" / "proxy.yaml").write_text("format_version: 99\n")
    with pytest.raises(ProxyError, match="proxy.yaml"):
        Proxy.load(tmp_path / "p")
    with pytest.raises(ProxyError, match="proxy.yaml"):
        Proxy.load(tmp_path / "missing")


def test_mrr_counts_ranks() -> None:
    true = np.eye(4) * 10
    assert mean_reciprocal_rank(true, true) == 1.0
    swapped = true[[1, 0, 2, 3]]  # items 0 and 1 rank second, 2 and 3 first
    assert mean_reciprocal_rank(swapped, true) == pytest.approx((0.5 + 0.5 + 1 + 1) / 4)
    rng = np.random.default_rng(0)
    random_guess = mean_reciprocal_rank(rng.normal(size=(1000, 8)), rng.normal(size=(1000, 8)))
    assert random_guess < 0.05  # chance level ~ ln(1000)/1000


def test_weighted_mrr_discounts_unpredictable_descriptors() -> None:
    """One descriptor the predictor cannot follow (noise 10x its spread) swamps plain L1; dividing by the
    error scales (Laplace maximum likelihood) ranks on the predictable ones."""
    rng = np.random.default_rng(1)
    true = rng.normal(size=(1000, 4))
    predicted = true + rng.normal(size=(1000, 4)) * np.array([10.0, 0.05, 0.05, 0.05])
    plain = mean_reciprocal_rank(predicted, true)
    weighted = mean_reciprocal_rank(predicted, true, scale=np.abs(predicted - true).mean(axis=0))
    assert plain < 0.3 and weighted > 0.9
    assert mean_reciprocal_rank(predicted, true, scale=np.ones(4)) == pytest.approx(plain)
    with pytest.raises(ValueError, match="scale"):
        mean_reciprocal_rank(predicted, true, scale=np.array([1.0, 0.0, 1.0, 1.0]))


def test_calibrate_stores_error_scales(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agents.proxy.calibrate import main as calibrate_main

    plan = TablePlan(
        n=128,
        param_names=tuple(PARAM_NAMES),
        base_0to1=tuple(map(float, default_vector())),
        sampler="uniform",
        seed=5,
        note_low=36,
        note_high=84,
        chunk_size=128,
        render_batch_size=128,
        probe_s=0.1,
        summary_frames=2,
    )
    build_table(tmp_path / "calib", plan, FeatureSettings(), progress=False)
    _, params, notes, descriptors = load_table(tmp_path / "calib")
    mean, std = torch.from_numpy(descriptors.mean(0)), torch.from_numpy(descriptors.std(0) + 1e-6)
    Proxy(DESCRIPTOR_NAMES, hidden=(4,), out_mean=mean, out_std=std).save(tmp_path / "p")
    assert Proxy.load(tmp_path / "p").error_scale_z is None
    assert calibrate_main(["--model", str(tmp_path / "p"), "--table", str(tmp_path / "calib")]) == 0
    proxy = Proxy.load(tmp_path / "p")
    scales = proxy.error_scale_z
    assert scales is not None and np.all(scales > 0) and proxy.meta["calibration"]["rows"] == 128
    pred_z = (
        proxy.predict(torch.from_numpy(params), torch.from_numpy(notes)).detach().numpy() - mean.numpy()
    ) / std.numpy()
    np.testing.assert_allclose(scales, np.abs(pred_z - (descriptors - mean.numpy()) / std.numpy()).mean(0), rtol=1e-3)
    metrics = evaluate(proxy, params, notes, descriptors.astype(np.float64), candidates=128)
    assert 0.0 < metrics["mrr_weighted"] <= 1.0
    meta_path = tmp_path / "p" / "proxy.yaml"
    meta_path.write_text(meta_path.read_text().replace("chroma_A:", "chroma_Z:"))
    with pytest.raises(ProxyError, match="error_scale_z"):
        Proxy.load(tmp_path / "p")
    assert calibrate_main(["--model", str(tmp_path / "p"), "--table", str(tmp_path / "missing")]) == 2
    assert "error" in capsys.readouterr().err


def small_fit(
    params: np.ndarray,
    notes: np.ndarray,
    descriptors: np.ndarray,
    *,
    chroma_head: str,
    epochs: int = 8,
) -> tuple[Proxy, dict]:
    """`train` with the tests' small budget: a 64 x 64 network, batches of 256, one core's minutes."""
    return train(
        params,
        notes,
        descriptors,
        hidden=(64, 64),
        epochs=epochs,
        batch_size=256,
        lr=3e-3,
        max_minutes=2.0,
        val_fraction=0.05,
        seed=0,
        progress=False,
        chroma_head=chroma_head,
    )


def test_training_learns_a_smooth_map() -> None:
    params, notes, descriptors = synthetic_table(4096)
    # this map's 'chroma' is smooth in the note, not rotated by it: the direct head
    proxy, facts = small_fit(params, notes, descriptors, chroma_head="direct")
    assert facts["history"][-1]["val_l1"] < 0.5 * facts["history"][0]["val_l1"]
    hp, hn, hd = synthetic_table(1000, seed=1)
    metrics = evaluate(proxy, hp, hn, hd, candidates=1000)
    assert metrics["mrr"] > 0.5 and set(metrics["l1_units"]) == set(DESCRIPTOR_NAMES)
    scales = proxy.error_scale_z  # fitted on the validation split
    assert scales is not None and scales.shape == (len(DESCRIPTOR_NAMES),) and np.all(scales > 0)
    assert proxy.meta["calibration"]["rows"] == facts["validation_rows"]
    assert 0.5 < metrics["mrr_weighted"] <= 1.0 and "mrr_keep_weighted" in metrics
    more, facts2 = train(
        params,
        notes,
        descriptors,
        hidden=(8,),
        epochs=1,
        batch_size=256,
        lr=1e-4,
        max_minutes=1.0,
        val_fraction=0.05,
        seed=0,
        progress=False,
        init=proxy,
    )
    assert more.hidden == (64, 64) and more.chroma_head == "direct"  # the init's, not the arguments' (rotate)
    torch.testing.assert_close(more.out_mean, proxy.out_mean)
    assert facts2["history"][0]["val_l1"] < 1.1 * facts["best_val_l1_normalized"]  # continues, not from scratch
    wider, _ = train(
        params[:512],
        notes[:512],
        descriptors[:512],
        hidden=(8,),
        epochs=1,
        batch_size=256,
        lr=0.0,  # no update: the widened proxy must compute what its init did
        max_minutes=1.0,
        val_fraction=0.05,
        seed=0,
        progress=False,
        init=proxy,
        log_levels=True,
    )
    assert wider.log_levels and wider.net[0].in_features == proxy.net[0].in_features + N_LOG_INPUTS
    with torch.no_grad():
        x, n = torch.from_numpy(hp[:64]), torch.from_numpy(hn[:64])
        torch.testing.assert_close(wider.predict(x, n), proxy.predict(x, n), rtol=1e-5, atol=1e-4)


def test_rotate_head_learns_a_transposed_chroma_the_direct_head_cannot() -> None:
    """Sounds whose chroma is their timbre's pitch-class profile rolled to the note (what a transposed
    synth voice does): with the same network and budget, the rotate head learns it, the direct head
    (a plain MLP with pitch-class inputs) does not."""
    rng = np.random.default_rng(5)
    params, notes, descriptors = synthetic_table(3000, seed=5)
    profile = params[:, :12] @ rng.uniform(0.0, 1.0, size=(12, 12))  # the timbre decides the profile
    chroma_cols = [DESCRIPTOR_NAMES.index(name) for name in GROUPS["chroma"]]
    for row, shift in enumerate(notes.astype(int) % 12):
        descriptors[row, chroma_cols] = np.roll(profile[row], shift)
    errors = {}
    for head in ("direct", "rotate"):
        proxy, _ = small_fit(params[:2000], notes[:2000], descriptors[:2000], chroma_head=head, epochs=16)
        l1 = evaluate(proxy, params[2000:], notes[2000:], descriptors[2000:], candidates=1000)["l1_normalized"]
        errors[head] = np.mean([l1[name] for name in GROUPS["chroma"]])
    assert errors["rotate"] < 0.5 * errors["direct"], errors


def test_shipped_proxy_loads_and_reports_its_metrics() -> None:
    proxy = Proxy.load(SHIPPED)
    assert proxy.descriptor_names == DESCRIPTOR_NAMES
    out = proxy.predict(torch.from_numpy(default_vector()[None]), torch.tensor([60.0]))
    assert out.shape == (1, len(DESCRIPTOR_NAMES)) and torch.isfinite(out).all()
    size = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file())
    assert size <= 5 * 2**20
    metrics = proxy.meta["metrics"]
    assert 0.0 < metrics["random"]["mrr"] <= 1.0 and 0.0 < metrics["presets"]["mrr"] <= 1.0
    assert proxy.meta["training"]["training_rows"] >= 1_000_000
    assert proxy.meta["target"]["summary_frames"] == 2 and proxy.meta["target"]["probe_s"] == pytest.approx(0.1)
    assert proxy.log_levels and proxy.net[0].in_features == 49 + N_LOG_INPUTS
    assert load_error_head(SHIPPED, proxy) is not None  # per-sound error scales, fitted on this proxy
    assert metrics["presets"]["mrr_weighted"] > metrics["presets"]["mrr_weighted_global"]


@pytest.mark.parametrize("noise", ["sampled", "none"])
def test_shipped_proxy_ranks_fresh_renders(tmp_path: Path, noise: str) -> None:
    """Held-out patches rendered now (the real target): the proxy's predictions pick them out, with
    noise and without (presets rarely have any: there the log-level inputs matter)."""
    proxy = Proxy.load(SHIPPED)
    target = proxy.meta["target"]
    names = tuple(n for n in proxy.meta["param_order"] if noise == "sampled" or n != "noise_level")
    plan = TablePlan(
        n=64,
        param_names=names,
        base_0to1=tuple(map(float, default_vector())),
        sampler="uniform",
        seed=4242,
        note_low=36,
        note_high=84,
        chunk_size=64,
        render_batch_size=64,
        sample_rate_hz=target["sample_rate_hz"],
        probe_s=target["probe_s"],
        summary_frames=target["summary_frames"],
    )
    build_table(tmp_path / "t", plan, FeatureSettings(), progress=False)
    _, params, notes, descriptors = load_table(tmp_path / "t")
    metrics = evaluate(
        proxy, params, notes, descriptors.astype(np.float64), candidates=64, head=load_error_head(SHIPPED, proxy)
    )
    assert metrics["mrr"] > 0.7, metrics["mrr"]
    assert metrics["nll"] < metrics["nll_global"] - 0.05  # the head knows where the proxy errs
    assert metrics["l1_normalized_mean"] < 0.5


def test_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agents.proxy.evaluate import main as evaluate_main
    from agents.proxy.train import main as train_main

    with pytest.raises(SystemExit) as help_exit:
        evaluate_main(["--help"])
    assert help_exit.value.code == 0
    Proxy(DESCRIPTOR_NAMES, hidden=(4,)).save(tmp_path / "p")
    assert evaluate_main(["--model", str(tmp_path / "p"), "--table", str(tmp_path), "--presets", "0"]) == 2
    assert "manifest" in capsys.readouterr().err
    assert evaluate_main(["--model", str(tmp_path / "p"), "--presets", "4"]) == 2  # never trained: no target
    assert "target" in capsys.readouterr().err
    assert train_main(["--table", str(tmp_path)]) == 2
    assert "manifest" in capsys.readouterr().err


def test_benchmark_reports_both_rates_and_their_ratio(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "proxy.py"
    out = subprocess.run(
        [sys.executable, str(script), "--json", "--seconds", "0.1", "--batch", "8"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["proxy_predictions_per_s"] > 0 and result["render_analyze_per_s"] > 0
    assert result["ratio"] == pytest.approx(
        result["proxy_predictions_per_s"] / result["render_analyze_per_s"], rel=0.01
    )
    assert result["summary_frames"] == 2 and result["training_rows"] >= 1_000_000
    assert result["precision"] == Proxy.load(SHIPPED).precision  # the folder's choice, resolved on this CPU
    assert ("ratio_float32" in result) == (result["precision"] == "bfloat16")
