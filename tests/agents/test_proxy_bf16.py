"""The proxy's bfloat16 hidden layers (agents.proxy.bf16): bit conversions, the chain, the choice per folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from agents.proxy import Proxy, ProxyError
from agents.proxy import bf16 as bf16_module
from agents.proxy.bf16 import _from_bf16, _to_bf16, resolve, silu_bf16, silu_from_bf16, silu_to_bf16
from features.names import DESCRIPTOR_NAMES


def _bits(t: torch.Tensor) -> np.ndarray:
    return t.view(torch.int16).numpy().view(np.uint16)


def test_conversions_round_to_nearest_even_like_torch() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.normal(0, 3, 10000).astype(np.float32),
            np.float32([0.0, -0.0, 1.0, 1.00390625, 1.01171875, 3.0e38, -1e-30]),  # ties both ways, extremes
        ]
    )
    got = np.empty(x.shape, np.uint16)
    _to_bf16(x, got)
    np.testing.assert_array_equal(got, _bits(torch.from_numpy(x).to(torch.bfloat16)))
    back = np.empty(x.shape, np.float32)
    _from_bf16(got, back)
    np.testing.assert_array_equal(back, torch.from_numpy(x).to(torch.bfloat16).float().numpy())


def test_silu_kernels_match_torch_within_bfloat16_rounding() -> None:
    x = torch.randn(64, 48) * 4
    expected = torch.nn.functional.silu(x)
    half = torch.empty(64, 48, dtype=torch.bfloat16)
    silu_to_bf16(x.clone().numpy(), _bits(half))
    torch.testing.assert_close(half.float(), expected, rtol=2**-8, atol=1e-6)
    inplace = x.to(torch.bfloat16)
    silu_bf16(_bits(inplace), np.empty((64, 48), np.float32))
    torch.testing.assert_close(
        inplace.float(), torch.nn.functional.silu(x.to(torch.bfloat16).float()), rtol=2**-8, atol=1e-6
    )
    out = np.empty((64, 48), np.float32)
    silu_from_bf16(_bits(x.to(torch.bfloat16)), out)
    torch.testing.assert_close(torch.from_numpy(out), torch.nn.functional.silu(x.to(torch.bfloat16).float()))


@pytest.mark.parametrize("hidden", [(32, 32), (40, 24, 32)])
def test_bfloat16_path_stays_close_to_float32_and_follows_weight_changes(hidden: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    proxy = Proxy(DESCRIPTOR_NAMES, hidden=hidden, out_std=torch.full((37,), 2.0), chroma_head="rotate")
    params, notes = torch.rand(1100, 24), torch.randint(36, 85, (1100,)).float()  # > two 512-row blocks
    with torch.no_grad():
        exact = proxy.predict(params, notes)
        assert proxy.set_precision("bfloat16") == "bfloat16"
        half = proxy.predict(params, notes)
        assert not torch.equal(half, exact)  # the bfloat16 layers ran
        torch.testing.assert_close(half, exact, rtol=0.0, atol=0.05 * 2.0)
        assert ((half - exact).abs() / 2.0).mean() < 0.01
        proxy.net[2].weight.mul_(0.0)  # an in-place update reaches the bfloat16 copies too
        proxy.set_precision("float32")
        changed = proxy.predict(params, notes)
        proxy.set_precision("bfloat16")
        torch.testing.assert_close(proxy.predict(params, notes), changed, rtol=0.0, atol=0.1)
    grad_params = params[:4].clone().requires_grad_(True)
    proxy.predict(grad_params, notes[:4]).sum().backward()  # the differentiable path is float32 as before
    assert grad_params.grad is not None


def test_precision_choice_auto_single_layer_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bf16_module, "native_bf16", lambda: False)
    assert resolve("auto") == "float32" and resolve("bfloat16") == "bfloat16"
    monkeypatch.setattr(bf16_module, "native_bf16", lambda: True)
    assert resolve("auto") == "bfloat16"
    one = Proxy(DESCRIPTOR_NAMES, hidden=(16,))
    assert one.set_precision("bfloat16") == "float32"  # no hidden-to-hidden layer to run in bfloat16
    with pytest.raises(ValueError, match="float16"):
        one.set_precision("float16")


def test_precision_is_read_from_the_folder(tmp_path: Path) -> None:
    proxy = Proxy(DESCRIPTOR_NAMES, hidden=(16, 16))
    proxy.save(tmp_path / "p", {"no_grad_precision": "bfloat16"})
    assert Proxy.load(tmp_path / "p").precision == "bfloat16"
    Proxy(DESCRIPTOR_NAMES, hidden=(16, 16)).save(tmp_path / "q")
    assert Proxy.load(tmp_path / "q").precision == "float32"  # folders without the key: as before
    meta = yaml.safe_load((tmp_path / "p" / "proxy.yaml").read_text())
    meta["no_grad_precision"] = "int4"
    (tmp_path / "p" / "proxy.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(ProxyError, match=r"proxy\.yaml: no_grad_precision.*int4"):
        Proxy.load(tmp_path / "p")
