"""The proxy's bfloat16 layers (agents.proxy.bf16): the SiLU kernel, the chain, the choice per folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from agents.proxy import Proxy, ProxyError
from agents.proxy import bf16 as bf16_module
from agents.proxy.bf16 import bf16_layers, resolve, run_chain, silu_bf16, silu_lookup, silu_table
from features.names import DESCRIPTOR_NAMES


def _bits(t: torch.Tensor) -> np.ndarray:
    return t.view(torch.int16).numpy().view(np.uint16)


@pytest.mark.parametrize("silu", [silu_bf16, silu_lookup])
def test_silu_kernel_matches_torch_to_one_bfloat16_step(silu) -> None:  # type: ignore[no-untyped-def]
    x = torch.cat(
        [
            torch.randn(5000) * 4,
            torch.tensor([0.0, -0.0, 1.0, -1.0, 40.0, -40.0, 300.0, -300.0, 3.0e38, -3.0e38, 1e-30]),
        ]
    ).to(torch.bfloat16)
    expected = torch.nn.functional.silu(x.float()).to(torch.bfloat16)  # float32, rounded to nearest even
    got = x.clone().reshape(1, -1)
    silu(_bits(got))
    steps = np.abs(_bits(got).reshape(-1).astype(np.int64) - _bits(expected).astype(np.int64))
    assert steps.max() <= 1  # at most one bfloat16 step, where float32 rounding lands on a tie
    assert (steps == 0).mean() > 0.998
    large = x.float().abs() > 30  # silu(x) = x (or -0) in float32 there: rounding must keep it exact
    torch.testing.assert_close(got.reshape(-1)[large].float(), expected[large].float(), rtol=0, atol=0)


def test_silu_lookup_gives_the_computed_bits_in_place() -> None:
    rng = np.random.default_rng(3)
    h = rng.integers(0, 1 << 16, size=(300, 70)).astype(np.uint16)  # every kind of pattern: NaN, inf, subnormal
    h[0, :4] = [0x0000, 0x8000, 0x7F80, 0xFF80]  # +0, -0, +inf, -inf
    computed, looked_up = h.copy(), h.copy()
    silu_bf16(computed)
    silu_lookup(looked_up)
    np.testing.assert_array_equal(looked_up, computed)
    assert looked_up[0, 0] == 0 and looked_up[0, 2] == 0x7F80  # silu(0) = 0, silu(inf) = inf
    table = silu_table()
    assert table.shape == (1 << 16,) and not table.flags.writeable
    with pytest.raises(ValueError):
        table[0] = 1
    with pytest.raises(ValueError, match="C-contiguous"):
        silu_lookup(h[:, ::2])


def test_chain_blocks_and_direct_head_agree() -> None:
    torch.manual_seed(1)
    layers = bf16_layers([(torch.randn(58, 40) / 8, torch.randn(40)), (torch.randn(40, 9) / 6, torch.randn(9))])
    x = torch.randn(300, 58)
    whole, blocks = torch.empty(300, 9), torch.empty(300, 9)
    run_chain(x, layers, whole, chunk_rows=1000)
    run_chain(x, layers, blocks, chunk_rows=7)  # 43 blocks, the last one short
    torch.testing.assert_close(blocks, whole, rtol=0, atol=0)
    hidden = torch.nn.functional.silu(x @ layers[0][0].float() + layers[0][1].float())
    torch.testing.assert_close(whole, hidden @ layers[1][0].float() + layers[1][1].float(), rtol=0.03, atol=0.05)
    direct = Proxy(DESCRIPTOR_NAMES, hidden=(24, 24), out_std=torch.full((37,), 3.0), out_mean=torch.full((37,), 5.0))
    params, notes = torch.rand(200, 24), torch.randint(36, 85, (200,)).float()
    with torch.no_grad():
        exact = direct.predict(params, notes)
        direct.set_precision("bfloat16")
        half = direct.predict(params, notes)
        assert not torch.equal(half, exact)  # the bfloat16 layers ran
        torch.testing.assert_close(half, exact, rtol=0, atol=0.02 * 3.0)


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
        small = proxy.predict(params[:100], notes[:100])  # below bf16.MIN_ROWS: float32, where it is faster
        torch.testing.assert_close(small, exact[:100], rtol=1e-5, atol=1e-5)
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
    assert one.set_precision("bfloat16") == "bfloat16"  # every layer runs in bfloat16, one hidden layer too
    with torch.no_grad():
        half = one.predict(torch.rand(200, 24, generator=torch.Generator().manual_seed(0)), torch.full((200,), 60.0))
        one.set_precision("float32")
        exact = one.predict(torch.rand(200, 24, generator=torch.Generator().manual_seed(0)), torch.full((200,), 60.0))
        assert not torch.equal(half, exact)
        torch.testing.assert_close(half, exact, rtol=0, atol=0.05)
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
