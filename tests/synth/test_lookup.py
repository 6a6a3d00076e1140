"""The synth lookup table: sampling, chunked resumable generation, nearest-neighbour queries both ways."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from features.config import FeatureSettings
from features.names import DESCRIPTOR_NAMES
from synth.lookup_store import TableError, TablePlan, build_table, chunk_path, load_table, sample_rows
from synth.params import DISCRETE_INDICES, PARAM_INDEX, PARAM_NAMES, PARAMS, default_vector

BASE = tuple(float(v) for v in default_vector())


def tiny_plan(**kw: object) -> TablePlan:
    values: dict[str, object] = dict(
        n=10,
        param_names=("filter_cutoff", "osc1_wave"),
        base_0to1=BASE,
        chunk_size=4,
        render_batch_size=4,
        probe_s=0.1,
    )
    values.update(kw)
    return TablePlan(**values)  # type: ignore[arg-type]


def test_sobol_rows_vary_only_the_chosen_params_and_are_deterministic() -> None:
    plan = tiny_plan(n=64)
    params, notes = sample_rows(plan, 0, 64)
    again, _ = sample_rows(plan, 16, 32)  # a chunk is the same rows wherever it is generated
    np.testing.assert_array_equal(params[16:32], again)
    varied = [PARAM_INDEX["filter_cutoff"], PARAM_INDEX["osc1_wave"]]
    fixed = [i for i in range(24) if i not in varied]
    np.testing.assert_allclose(params[:, fixed], np.tile(np.asarray(BASE, np.float32)[fixed], (64, 1)))
    assert params[:, varied].std(axis=0).min() > 0.2  # space-filling
    assert np.all(notes == 60)


def test_grid_enumerates_every_level_combination_and_uniform_snaps_discrete_params() -> None:
    plan = tiny_plan(sampler="grid", grid_levels=3)
    assert plan.rows == 9
    params, _ = sample_rows(plan, 0, 9)
    pairs = {
        (round(float(a), 3), round(float(b), 3))
        for a, b in params[:, [PARAM_INDEX["filter_cutoff"], PARAM_INDEX["osc1_wave"]]]
    }
    assert len(pairs) == 9
    uni = TablePlan(n=50, param_names=("osc", "lfo"), base_0to1=BASE, sampler="uniform", note_low=40, note_high=50)
    params, notes = sample_rows(uni, 0, 50)
    for i in DISCRETE_INDICES:
        steps = PARAMS[i].n_steps - 1
        np.testing.assert_allclose(params[:, i] * steps, np.round(params[:, i] * steps), atol=1e-5)
    assert len(np.unique(params[:, PARAM_INDEX["unison_voices"]])) > 3
    assert notes.min() >= 40 and notes.max() <= 50


def test_ranges_draw_a_sampled_parameter_from_part_of_its_range() -> None:
    plan = tiny_plan(n=256, ranges=(("filter_cutoff", 0.1, 0.3),))
    params, _ = sample_rows(plan, 0, 256)
    cutoff = params[:, PARAM_INDEX["filter_cutoff"]]
    assert cutoff.min() >= 0.1 and cutoff.max() <= 0.3 and cutoff.max() - cutoff.min() > 0.15
    full, _ = sample_rows(tiny_plan(n=256), 0, 256)
    np.testing.assert_array_equal(params[:, PARAM_INDEX["osc1_wave"]], full[:, PARAM_INDEX["osc1_wave"]])
    grid, _ = sample_rows(tiny_plan(sampler="grid", grid_levels=3, ranges=(("filter_cutoff", 0.5, 1.0),)), 0, 9)
    assert sorted(set(np.round(grid[:, PARAM_INDEX["filter_cutoff"]], 4))) == [0.5, 0.75, 1.0]


def test_edge_prob_puts_continuous_params_at_the_ends_of_their_ranges() -> None:
    names = ("filter_cutoff", "noise_level", "unison_voices")
    plan = tiny_plan(n=4000, param_names=names, edge_prob=0.3, ranges=(("noise_level", 0.0, 0.25),), sampler="uniform")
    params, _ = sample_rows(plan, 0, 4000)
    cutoff, noise = params[:, PARAM_INDEX["filter_cutoff"]], params[:, PARAM_INDEX["noise_level"]]
    for column, low, high in ((cutoff, 0.0, 1.0), (noise, 0.0, 0.25)):
        at_low, at_high = np.mean(column == low), np.mean(column == high)
        assert 0.12 < at_low < 0.18 and 0.12 < at_high < 0.18, (at_low, at_high)
        assert column.min() >= low and column.max() <= high
    assert np.mean((cutoff == 0) | (cutoff == 1)) == pytest.approx(0.3, abs=0.03)
    voices = params[:, PARAM_INDEX["unison_voices"]]  # discrete: keeps its own levels, not pushed to the ends
    assert np.mean((voices > 0) & (voices < 1)) > 0.6
    np.testing.assert_array_equal(sample_rows(plan, 0, 4000)[0], params)  # a chunk reproduces (resume)
    plain, _ = sample_rows(tiny_plan(n=4000, param_names=names, sampler="uniform"), 0, 4000)
    assert np.mean(plain[:, PARAM_INDEX["filter_cutoff"]] == 0.0) < 0.001


def test_bad_plans_raise_with_the_field_named() -> None:
    with pytest.raises(KeyError, match="no_such_param"):
        tiny_plan(param_names=("no_such_param",))
    with pytest.raises(TableError, match="note_low"):
        tiny_plan(note_low=80, note_high=40)
    with pytest.raises(TableError, match="base_0to1"):
        tiny_plan(base_0to1=(0.5,))
    with pytest.raises(TableError, match="'noise_level' is not a sampled parameter"):
        tiny_plan(ranges=(("noise_level", 0.0, 0.2),))
    with pytest.raises(TableError, match="'filter_cutoff' needs 0 <= low < high <= 1, got 0.5, 0.2"):
        tiny_plan(ranges=(("filter_cutoff", 0.5, 0.2),))
    with pytest.raises(TableError, match="given twice"):
        tiny_plan(ranges=(("filter_cutoff", 0.0, 0.2), ("filter_cutoff", 0.1, 0.3)))
    with pytest.raises(TableError, match="edge_prob must be in"):
        tiny_plan(edge_prob=1.5)


def test_build_is_chunked_resumable_and_extendable(tmp_path: Path) -> None:
    folder = tmp_path / "table"
    plan = tiny_plan()
    features = FeatureSettings()
    assert build_table(folder, plan, features, progress=False) == 3  # 4 + 4 + 2 rows
    manifest, params, _, descriptors = load_table(folder)
    assert params.shape == (10, 24) and descriptors.shape == (10, len(DESCRIPTOR_NAMES))
    assert np.all(np.isfinite(descriptors)) and manifest["descriptor_names"] == list(DESCRIPTOR_NAMES)
    assert build_table(folder, plan, features, progress=False) == 0  # nothing to redo
    chunk_path(folder, 1).unlink()
    assert build_table(folder, plan, features, progress=False) == 1  # only the missing chunk
    _, params2, _, descriptors2 = load_table(folder)
    np.testing.assert_array_equal(params, params2)
    np.testing.assert_allclose(descriptors, descriptors2, rtol=1e-5, atol=1e-4)  # deterministic renders
    assert build_table(folder, dataclasses.replace(plan, n=12), features, progress=False) == 1  # last chunk grows
    with pytest.raises(TableError, match="another plan"):
        build_table(folder, dataclasses.replace(plan, seed=5), features, progress=False)


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lookup")
    build_table(folder, tiny_plan(n=24, chunk_size=8, render_batch_size=8), FeatureSettings(), progress=False)
    return folder


def test_queries_both_ways_find_the_stored_rows(table_dir: Path) -> None:
    from synth.lookup import LookupTable

    table = LookupTable(table_dir)
    assert len(table) == 24
    descriptors, rows = table.descriptors_of(table.params[[3, 17]])
    assert rows[:, 0].tolist() == [3, 17]
    np.testing.assert_array_equal(descriptors[:, 0], table.descriptors[[3, 17]])
    params, distances = table.params_of(table.descriptors[[5, 11]], k=2)
    np.testing.assert_array_equal(params[:, 0], table.params[[5, 11]])
    assert np.allclose(distances[:, 0], 0.0) and np.all(distances[:, 1] > 0)
    sub, _ = table.params_of(table.descriptors[[7]], names=["loudness", "centroid"])
    assert sub.shape == (1, 1, 24)


def test_cli_build_and_query(tmp_path: Path, table_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from synth.lookup import main as lookup_main

    with pytest.raises(SystemExit) as help_exit:
        lookup_main(["--help"])
    assert help_exit.value.code == 0 and "lookup" in capsys.readouterr().out
    assert lookup_main(["build", str(tmp_path / "t"), "--params", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert lookup_main(["build", str(tmp_path / "t"), "--range", "noise_level", "0", "x"]) == 2
    assert "--range noise_level 0 x: LOW and HIGH must be numbers" in capsys.readouterr().err
    ranged = tmp_path / "ranged"
    argv = ["build", str(ranged), "--n", "4", "--chunk-size", "4", "--probe-s", "0.1", "--params", "noise_level"]
    assert lookup_main([*argv, "--range", "noise_level", "0", "0.25", "--workers", "1"]) == 0
    assert "4 rows in 1 chunks" in capsys.readouterr().out
    manifest, params, _, _ = load_table(ranged)
    assert manifest["plan"]["ranges"] == [["noise_level", 0.0, 0.25]]
    assert params[:, PARAM_INDEX["noise_level"]].max() <= 0.25
    edged = tmp_path / "edged"
    argv[1] = str(edged)
    assert lookup_main([*argv, "--params", "noise_level", "filter_cutoff", "--edge-prob", "1", "--workers", "1"]) == 0
    assert "4 rows in 1 chunks" in capsys.readouterr().out
    manifest, params, _, _ = load_table(edged)
    assert manifest["plan"]["edge_prob"] == 1.0
    assert set(np.unique(params[:, PARAM_INDEX["filter_cutoff"]])) <= {0.0, 1.0}
    old_plan = json.loads((table_dir / "manifest.json").read_text())["plan"]
    assert "ranges" not in old_plan and "edge_prob" not in old_plan  # older tables unchanged
    preset = tmp_path / "p.json"
    params = {name: float(v) for name, v in zip(PARAM_NAMES, BASE, strict=True)}
    preset.write_text(json.dumps({"name": "p", "version": "1.0", "parameters": params}))
    assert lookup_main(["query", str(table_dir), "--preset", str(preset)]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert set(reply["neighbours"][0]) == set(DESCRIPTOR_NAMES)
    assert lookup_main(["query", str(tmp_path / "none"), "--preset", str(preset)]) == 2
    assert "manifest" in capsys.readouterr().err


def test_map_of_the_table_alone_and_under_a_corpus(table_dir: Path, tmp_path: Path) -> None:
    from corpus.map import main as map_main

    assert map_main(["--lookup", str(table_dir), "--out", str(tmp_path / "t.png")]) == 0
    assert (tmp_path / "t.png").stat().st_size > 1000
    demo = Path(__file__).resolve().parents[2] / "corpus" / "demo"
    out = tmp_path / "both.png"
    assert map_main([str(demo), "--lookup", str(table_dir), "--out", str(out), "--max-points", "500"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert map_main(["--lookup", str(table_dir), "--color-param", "nope"]) == 2
