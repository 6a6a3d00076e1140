"""Presets: schema generated from the table, validation naming the bad field, factory presets."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from synth.params import PARAM_NAMES, default_vector
from synth.presets import (
    SCHEMA_PATH,
    Preset,
    PresetError,
    factory_presets,
    load_preset,
    preset_schema,
    save_preset,
)

FACTORY_KINDS = {"pad", "pluck", "bass", "lead", "bell", "brass", "noise_sweep", "wobble"}


def test_committed_schema_is_generated_from_the_table() -> None:
    assert json.loads(SCHEMA_PATH.read_text()) == preset_schema()
    jsonschema.Draft202012Validator.check_schema(preset_schema())


def test_factory_presets_are_valid_and_distinct() -> None:
    presets = factory_presets()
    assert set(presets) >= FACTORY_KINDS
    vecs = np.stack([p.params_0to1 for p in presets.values()])
    dists = np.abs(vecs[:, None, :] - vecs[None, :, :]).sum(-1)
    assert np.min(dists[~np.eye(len(vecs), dtype=bool)]) > 0.5  # no two presets are near-copies


def test_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    p = Preset(name="x", params_0to1=rng.random(24), note=62, tags=("a", "b"))
    save_preset(p, tmp_path / "x.json")
    q = load_preset(tmp_path / "x.json")
    assert q.name == "x" and q.note == 62 and q.tags == ("a", "b")
    np.testing.assert_allclose(q.params_0to1, p.params_0to1, atol=1e-6)


def _preset_dict() -> dict:
    return Preset(name="t", params_0to1=default_vector()).to_json_dict()


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["parameters"].__setitem__("filter_cutoff", 1.5), "parameters.filter_cutoff"),
        (lambda d: d["parameters"].pop("amp_decay"), "parameters.amp_decay"),
        (lambda d: d["parameters"].__setitem__("cutoff", 0.2), "parameters.cutoff"),
        (lambda d: d["parameters"].__setitem__("lfo_rate", "fast"), "parameters.lfo_rate"),
        (lambda d: d.pop("name"), "name"),
        (lambda d: d.__setitem__("note", 200), "note"),
        (lambda d: d.__setitem__("colour", "red"), "colour"),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, mutate, field: str) -> None:
    d = _preset_dict()
    mutate(d)
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(d))
    with pytest.raises(PresetError, match=rf"bad\.json: field '{field}'"):
        load_preset(f)


def test_unreadable_and_invalid_json(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match="missing.json: cannot read"):
        load_preset(tmp_path / "missing.json")
    f = tmp_path / "broken.json"
    f.write_text('{"name": ')
    with pytest.raises(PresetError, match=r"broken\.json: not valid JSON \(line 1"):
        load_preset(f)


def test_preset_vector_is_snapped_and_checked() -> None:
    v = default_vector()
    v[PARAM_NAMES.index("unison_voices")] = 0.55
    assert Preset(name="s", params_0to1=v).params_0to1[PARAM_NAMES.index("unison_voices")] == pytest.approx(0.5)
    v[0] = np.nan
    with pytest.raises(PresetError, match="osc1_wave"):
        Preset(name="n", params_0to1=v)
    with pytest.raises(PresetError, match="expected 24"):
        Preset(name="short", params_0to1=np.zeros(3))
