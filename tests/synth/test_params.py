"""The parameter table: SPEC order, round trips, snapping, derived names."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from synth.params import (
    CONTINUOUS_INDICES,
    DISCRETE_INDICES,
    N_PARAMS,
    PARAM_NAMES,
    PARAMS,
    default_vector,
    indices_of,
    module_indices,
    param,
    snap_vector,
    to_values,
)

SPEC_ORDER = [
    "osc1_wave",
    "osc1_level",
    "osc2_wave",
    "osc2_level",
    "osc2_semitones",
    "osc2_fine",
    "unison_voices",
    "unison_detune",
    "noise_level",
    "filter_cutoff",
    "filter_resonance",
    "filter_env_amount",
    "amp_attack",
    "amp_decay",
    "amp_sustain",
    "amp_release",
    "mod_attack",
    "mod_decay",
    "mod_sustain",
    "mod_release",
    "lfo_rate",
    "lfo_amount",
    "lfo_target",
    "master_volume",
]


def test_names_and_order_are_the_spec_wire_order() -> None:
    assert N_PARAMS == 24
    assert list(PARAM_NAMES) == SPEC_ORDER
    assert [p.index for p in PARAMS] == list(range(24))


def test_discrete_parameters_are_the_snapped_ones() -> None:
    assert [PARAM_NAMES[i] for i in DISCRETE_INDICES] == ["osc2_semitones", "unison_voices", "lfo_target"]
    assert len(CONTINUOUS_INDICES) == 21
    assert param("osc2_semitones").n_steps == 49 and param("unison_voices").n_steps == 7
    assert param("lfo_target").choices == ("pitch", "filter", "amplitude")


@pytest.mark.parametrize("spec", PARAMS, ids=PARAM_NAMES)
def test_round_trip_and_ranges(spec) -> None:
    for x in (0.0, 0.25, 0.5, 0.9, 1.0):
        value = spec.to_value(x)
        assert min(spec.low, spec.high) - 1e-9 <= value <= max(spec.low, spec.high) + 1e-9
        assert spec.from_value(value) == pytest.approx(spec.snap_0to1(x), abs=1e-9)
    with pytest.raises(ValueError, match=spec.name):
        spec.from_value(max(spec.low, spec.high) + 1000)


def test_log_curves_are_geometric() -> None:
    cutoff = param("filter_cutoff")
    assert cutoff.to_value(0) == pytest.approx(30.0) and cutoff.to_value(1) == pytest.approx(20000.0)
    assert cutoff.to_value(0.5) == pytest.approx((30.0 * 20000.0) ** 0.5)
    assert param("amp_attack").to_value(0.0) == pytest.approx(0.001)


def test_snapping_discrete_values() -> None:
    semis = param("osc2_semitones")
    assert semis.to_value(0.5) == 0 and semis.to_value(0.51) == 0 and semis.to_value(1) == 24
    assert param("unison_voices").to_value(0.99) == 7
    x = np.full(24, 0.52, dtype=np.float32)
    snapped = snap_vector(x)
    assert snapped[PARAM_NAMES.index("unison_voices")] == pytest.approx(3 / 6)
    assert snapped[PARAM_NAMES.index("osc1_level")] == pytest.approx(0.52)
    assert np.all(snap_vector(np.full(24, 7.0)) == 1.0) and np.all(snap_vector(np.full(24, -1.0)) == 0.0)


def test_vectorized_values_match_scalar() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((5, 24)).astype(np.float32)
    vals = to_values(x)
    for b in range(5):
        for p in PARAMS:
            assert vals[b, p.index] == pytest.approx(p.to_value(float(x[b, p.index])), rel=1e-5)


def test_derived_names_and_lookups() -> None:
    assert PARAMS[9].osc_address == "/serumlite/filter_cutoff"
    assert PARAMS[9].pd_receive == "sl-filter_cutoff"
    assert module_indices("filter") == (9, 10, 11)
    assert indices_of(["lfo", "master_volume"]) == (20, 21, 22, 23)
    with pytest.raises(KeyError, match="unknown Serum-lite parameter 'cutof'"):
        param("cutof")
    with pytest.raises(ValueError, match="unknown module"):
        module_indices("fx")  # type: ignore[arg-type]
    assert default_vector().shape == (24,) and default_vector().dtype == np.float32


def test_cli_params_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "synth", "params", "--json"], capture_output=True, text=True, check=True
    )
    data = json.loads(out.stdout)
    assert [r["name"] for r in data["parameters"]] == SPEC_ORDER
    text = subprocess.run([sys.executable, "-m", "synth", "params"], capture_output=True, text=True, check=True)
    assert "filter_cutoff" in text.stdout and "30..20000 Hz (log)" in text.stdout
