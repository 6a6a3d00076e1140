"""The proxy's error head: per-query MRR, fitting on heteroscedastic errors, save/load, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from agents.proxy import Proxy, ProxyError
from agents.proxy.calibrate import main as calibrate_main
from agents.proxy.error_head import (
    HEAD_FILE,
    ErrorHead,
    fit_error_head,
    load_error_head,
    predict_scales,
    save_error_head,
)
from agents.proxy.evaluate import evaluate, laplace_scales, mean_reciprocal_rank
from agents.proxy.evaluate import main as evaluate_main
from features.config import FeatureSettings
from features.names import DESCRIPTOR_NAMES
from synth.lookup_store import TablePlan, build_table
from synth.params import PARAM_NAMES, default_vector

K = len(DESCRIPTOR_NAMES)


def brute_force_mrr(predicted: np.ndarray, true: np.ndarray, scale: np.ndarray, power: int = 1) -> float:
    ranks = []
    for i in range(predicted.shape[0]):
        dist = ((np.abs(predicted[i] - true) / scale[i]) ** power).sum(1)
        ranks.append(1 + int((dist < dist[i]).sum()))
    return float(np.mean(1.0 / np.array(ranks)))


def test_per_query_scales_rank_like_the_definition_and_broadcast_like_global_ones() -> None:
    rng = np.random.default_rng(0)
    true = rng.normal(size=(50, 6))
    predicted = true + rng.normal(scale=0.7, size=(50, 6))
    scale = rng.uniform(0.2, 2.0, size=(50, 6))
    assert mean_reciprocal_rank(predicted, true, 50, scale) == pytest.approx(brute_force_mrr(predicted, true, scale))
    squared = mean_reciprocal_rank(predicted, true, 50, scale, power=2)  # a Gaussian head's ranking
    assert squared == pytest.approx(brute_force_mrr(predicted, true, scale, 2)) and squared != pytest.approx(
        mean_reciprocal_rank(predicted, true, 50, scale)
    )
    unit = np.ones(6)
    assert mean_reciprocal_rank(predicted, true, 50, unit, power=2) == pytest.approx(
        brute_force_mrr(predicted, true, np.ones((50, 6)), 2)
    )
    with pytest.raises(ValueError, match="power"):
        mean_reciprocal_rank(predicted, true, 50, scale, power=3)
    one = rng.uniform(0.2, 2.0, size=6)
    assert mean_reciprocal_rank(predicted, true, 50, np.tile(one, (50, 1))) == pytest.approx(
        mean_reciprocal_rank(predicted, true, 50, one)
    )
    with pytest.raises(ValueError, match=r"\[6\] or \[50, 6\]"):
        mean_reciprocal_rank(predicted, true, 50, scale[:10])
    with pytest.raises(ValueError, match="positive"):
        mean_reciprocal_rank(predicted, true, 50, -scale)


def test_per_query_scales_beat_global_ones_when_the_error_depends_on_the_sound() -> None:
    # half the sounds are predicted well on descriptor 0 and badly on 1, the other half the reverse
    rng = np.random.default_rng(1)
    n = 400
    true = rng.normal(size=(n, 2))
    scale = np.where((np.arange(n) % 2 == 0)[:, None], [0.02, 1.0], [1.0, 0.02])
    predicted = true + rng.laplace(size=(n, 2)) * scale
    per_query = mean_reciprocal_rank(predicted, true, n, scale)
    global_ = mean_reciprocal_rank(predicted, true, n, np.abs(predicted - true).mean(0))
    assert per_query > global_ + 0.2


def noisy_rows(proxy: Proxy, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows whose 'truth' is the proxy's prediction plus Laplace noise: small (0.05 z) where osc1_level
    is below 0.5, large (1.0 z) above: an error the head must learn from the params."""
    rng = np.random.default_rng(seed)
    params = rng.random((n, 24)).astype(np.float32)
    notes = rng.integers(36, 85, n).astype(np.float32)
    with torch.no_grad():
        pred = proxy.predict(torch.from_numpy(params), torch.from_numpy(notes)).numpy().astype(np.float64)
    level = params[:, PARAM_NAMES.index("osc1_level")]
    scale_z = np.where(level < 0.5, 0.05, 1.0)[:, None]
    std = proxy.out_std.numpy().astype(np.float64)
    return params, notes, pred + rng.laplace(size=pred.shape) * scale_z * std


def small_proxy() -> Proxy:
    torch.manual_seed(0)
    return Proxy(DESCRIPTOR_NAMES, hidden=(8,), out_mean=torch.full((K,), 3.0), out_std=torch.full((K,), 2.0))


def calibrated_rows(proxy: Proxy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """12,000 `noisy_rows`, with the proxy's global scales fitted on them (what calibrate --table stores)."""
    params, notes, descriptors = noisy_rows(proxy, 12000, seed=0)
    global_scales = laplace_scales(proxy, params, notes, descriptors)
    proxy.meta["error_scale_z"] = dict(zip(DESCRIPTOR_NAMES, map(float, global_scales), strict=True))
    return params, notes, descriptors


def fit_small_head(
    proxy: Proxy, params: np.ndarray, notes: np.ndarray, descriptors: np.ndarray, kind: str
) -> tuple[ErrorHead, dict[str, Any]]:
    return fit_error_head(
        proxy, params, notes, descriptors, hidden=(32,), epochs=6, batch_size=512, lr=1e-2, progress=False, kind=kind
    )


def test_head_learns_where_the_proxy_errs_and_improves_likelihood_and_ranking() -> None:
    proxy = small_proxy()
    params, notes, descriptors = calibrated_rows(proxy)
    head, facts = fit_small_head(proxy, params, notes, descriptors, "laplace")
    assert facts["val_nll"] < facts["val_nll_global_scales"] - 0.3 and facts["rows"] == 12000
    hp, hn, hd = noisy_rows(proxy, 1000, seed=1)
    scales = predict_scales(proxy, head, hp, hn)
    quiet = hp[:, PARAM_NAMES.index("osc1_level")] < 0.45
    loud = hp[:, PARAM_NAMES.index("osc1_level")] > 0.55
    assert np.median(scales[quiet]) < 0.15 and 0.6 < np.median(scales[loud]) < 1.6
    metrics = evaluate(proxy, hp, hn, hd, candidates=1000, head=head)
    assert metrics["nll"] < metrics["nll_global"] - 0.3 and metrics["error_model"] == "laplace"
    assert metrics["mrr_weighted"] >= metrics["mrr_weighted_global"]
    assert {"mrr_keep_weighted", "mrr_keep_weighted_global"} <= set(metrics)


def test_fit_refuses_too_few_rows_and_bad_settings() -> None:
    proxy = small_proxy()
    params, notes, descriptors = noisy_rows(proxy, 300, seed=0)
    with pytest.raises(ValueError, match="too few"):
        fit_error_head(proxy, params, notes, descriptors, batch_size=512, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        fit_error_head(proxy, params, notes, descriptors, batch_size=64, epochs=0, progress=False)
    with pytest.raises(ValueError, match="NaN"):
        fit_error_head(proxy, params, notes, descriptors * np.nan, batch_size=64, progress=False)


def test_head_saves_pickle_free_and_is_refused_on_other_weights(tmp_path: Path) -> None:
    proxy = small_proxy()
    folder = tmp_path / "p"
    proxy.save(folder)
    assert load_error_head(folder, Proxy.load(folder)) is None  # no head: global scales only
    params, notes, descriptors = noisy_rows(proxy, 2000, seed=0)
    head, facts = fit_error_head(
        proxy, params, notes, descriptors, hidden=(16,), epochs=1, batch_size=256, progress=False
    )
    save_error_head(folder, proxy, head, facts)
    loaded = Proxy.load(folder)
    again = load_error_head(folder, loaded)
    assert again is not None and loaded.meta["error_head"]["hidden"] == [16]
    np.testing.assert_allclose(
        predict_scales(loaded, again, params[:50], notes[:50]), predict_scales(proxy, head, params[:50], notes[:50])
    )
    with torch.no_grad():
        loaded.net[0].weight.add_(0.01)
    with pytest.raises(ProxyError, match="fitted on other proxy weights"):
        load_error_head(folder, loaded)
    (folder / HEAD_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ProxyError, match=f"{HEAD_FILE}: cannot read"):
        load_error_head(folder, Proxy.load(folder))
    (folder / "proxy.safetensors").write_bytes(b"not safetensors either")
    with pytest.raises(ProxyError, match="proxy.safetensors: cannot read"):
        Proxy.load(folder)


def test_calibrate_fits_a_head_that_evaluate_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = TablePlan(
        n=384,
        param_names=tuple(PARAM_NAMES),
        base_0to1=tuple(map(float, default_vector())),
        sampler="uniform",
        seed=6,
        note_low=36,
        note_high=84,
        chunk_size=384,
        render_batch_size=384,
        probe_s=0.1,
        summary_frames=2,
    )
    table = tmp_path / "calib"
    build_table(table, plan, FeatureSettings(), progress=False)
    from synth.lookup_store import load_table

    _, _, _, descriptors = load_table(table)
    mean, std = torch.from_numpy(descriptors.mean(0)), torch.from_numpy(descriptors.std(0) + 1e-6)
    Proxy(DESCRIPTOR_NAMES, hidden=(4,), out_mean=mean, out_std=std).save(tmp_path / "p")
    model = ["--model", str(tmp_path / "p")]
    head_args = ["--head-table", str(table), "--head-hidden", "8", "--head-epochs", "2", "--head-batch-size", "64"]
    head_args += ["--head-kind", "laplace"]
    assert calibrate_main([*model, "--table", str(table), *head_args]) == 0
    assert "error head from 384 rows" in capsys.readouterr().out
    proxy = Proxy.load(tmp_path / "p")
    assert proxy.meta["error_head"]["training"]["tables"] == [str(table)] and proxy.error_scale_z is not None
    assert proxy.meta["error_head"]["kind"] == "laplace"
    assert evaluate_main([*model, "--table", str(table), "--presets", "0", "--candidates", "128", "--json"]) == 0
    random = json.loads(capsys.readouterr().out)["random"]
    assert 0.0 < random["mrr_weighted"] <= 1.0 and 0.0 < random["mrr_weighted_global"] <= 1.0
    rest = ["--table", str(table), "--presets", "0", "--candidates", "128", "--json"]
    assert evaluate_main([*model, *rest, "--precision", "bfloat16"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "bfloat16"  # this run only: the folder keeps its own
    assert evaluate_main([*model, *rest, "--precision", "bfloat16", "--update-model"]) == 2
    assert "--precision" in capsys.readouterr().err and Proxy.load(tmp_path / "p").precision == "float32"
    assert calibrate_main(model) == 2
    assert "--table" in capsys.readouterr().err
    assert calibrate_main([*model, "--head-table", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err


def test_gaussian_and_laplace_heads_fit_their_own_scale_and_nll_compares_them() -> None:
    """On Laplace(b) errors the Laplace head's scale is b and the Gaussian head's their RMS, b * sqrt(2);
    with the constants in, the true model (Laplace) has the lower NLL."""
    proxy = small_proxy()
    params, notes, descriptors = calibrated_rows(proxy)
    heads = {kind: fit_small_head(proxy, params, notes, descriptors, kind)[0] for kind in ("laplace", "gaussian")}
    hp, hn, hd = noisy_rows(proxy, 1000, seed=1)
    loud = hp[:, PARAM_NAMES.index("osc1_level")] > 0.55
    laplace = np.median(predict_scales(proxy, heads["laplace"], hp, hn)[loud])
    gaussian = np.median(predict_scales(proxy, heads["gaussian"], hp, hn)[loud])
    assert 1.2 < gaussian / laplace < 1.9, (laplace, gaussian)  # sqrt(2) where the fit is exact
    m_l, m_g = (evaluate(proxy, hp, hn, hd, candidates=1000, head=heads[k]) for k in ("laplace", "gaussian"))
    assert m_l["error_model"] == "laplace" and m_g["error_model"] == "gaussian"
    assert m_l["nll"] < m_g["nll"] < m_g["nll_global"]
    with pytest.raises(ValueError, match="kind"):
        fit_error_head(proxy, params, notes, descriptors, batch_size=512, progress=False, kind="cauchy")


def test_head_kind_is_saved_and_older_heads_load_as_laplace(tmp_path: Path) -> None:
    import yaml

    proxy = small_proxy()
    folder = tmp_path / "p"
    proxy.save(folder)
    params, notes, descriptors = noisy_rows(proxy, 2000, seed=0)
    head, facts = fit_error_head(
        proxy, params, notes, descriptors, hidden=(8,), epochs=1, batch_size=256, progress=False
    )
    save_error_head(folder, proxy, head, facts)
    loaded = Proxy.load(folder)
    assert loaded.meta["error_head"]["kind"] == "gaussian" and load_error_head(folder, loaded).kind == "gaussian"
    meta = yaml.safe_load((folder / "proxy.yaml").read_text())
    del meta["error_head"]["kind"]  # a head saved before the kind was recorded
    (folder / "proxy.yaml").write_text(yaml.safe_dump(meta))
    old = load_error_head(folder, Proxy.load(folder))
    assert old is not None and old.kind == "laplace" and old.power == 1
    meta["error_head"]["kind"] = "cauchy"
    (folder / "proxy.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(ProxyError, match=r"proxy\.yaml: error_head kind.*cauchy"):
        load_error_head(folder, Proxy.load(folder))
