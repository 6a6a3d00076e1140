"""environment_settings.yaml -> frozen dataclasses: the shipped file loads; bad files are named."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from settings import DEFAULT_SETTINGS_PATH, Settings, SettingsError, load_settings, with_overrides


def test_shipped_settings_load_and_equal_the_defaults() -> None:
    loaded = load_settings()
    assert loaded.source == str(DEFAULT_SETTINGS_PATH)
    # the shipped file spells out every default: a drift between the two is a bug in one of them
    assert dataclasses.replace(loaded, source="<defaults>") == Settings()


def test_sections_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.audio.block_size = 1  # type: ignore[misc]


def _write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "s.yaml"
    f.write_text(text)
    return f


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    f = _write(tmp_path, "audio:\n  block_sise: 256\n")
    with pytest.raises(SettingsError, match=r"s\.yaml: unknown key 'audio\.block_sise'"):
        load_settings(f)


def test_unknown_section_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="unknown key 'audoi'"):
        load_settings(_write(tmp_path, "audoi:\n  block_size: 256\n"))


def test_wrong_type_names_expected_type(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"'audio\.block_size' must be int, got '256'"):
        load_settings(_write(tmp_path, "audio:\n  block_size: '256'\n"))


def test_bool_is_not_an_int(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="block_size"):
        load_settings(_write(tmp_path, "audio:\n  block_size: true\n"))


def test_literal_choices_are_listed(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"'server\.output' must be one of \['osc', 'synth', 'both'\]"):
        load_settings(_write(tmp_path, "server:\n  output: speakers\n"))


def test_union_literal_or_int(tmp_path: Path) -> None:
    assert load_settings(_write(tmp_path, "synth:\n  note: 64\n")).synth.note == 64
    with pytest.raises(SettingsError, match="synth.note"):
        load_settings(_write(tmp_path, "synth:\n  note: sing\n"))


def test_dataclass_invariants_are_reported_with_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"s\.yaml: 'synth': gate_off_db"):
        load_settings(_write(tmp_path, "synth:\n  gate_on_db: -60\n  gate_off_db: -50\n"))


def test_callback_priority_outside_the_fifo_range_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"'audio': callback_priority must be in 0\.\.99"):
        load_settings(_write(tmp_path, "audio:\n  callback_priority: 120\n"))


def test_partial_file_keeps_defaults_and_int_becomes_float(tmp_path: Path) -> None:
    s = load_settings(_write(tmp_path, "loss:\n  w_mr: 2\n"))
    assert s.loss.w_mr == 2.0 and isinstance(s.loss.w_mr, float)
    assert s.audio == Settings().audio


def test_lists_become_tuples_and_items_are_checked(tmp_path: Path) -> None:
    s = load_settings(_write(tmp_path, "training:\n  net_arch: [64, 32]\n"))
    assert s.training.net_arch == (64, 32)
    with pytest.raises(SettingsError, match=r"training\.net_arch\[1\]"):
        load_settings(_write(tmp_path, "training:\n  net_arch: [64, wide]\n"))


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="nope.yaml: cannot read"):
        load_settings(tmp_path / "nope.yaml")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(_write(tmp_path, "audio: [\n"))
    with pytest.raises(SettingsError, match="top level must be a mapping"):
        load_settings(_write(tmp_path, "- 1\n- 2\n"))


def test_overrides_are_validated() -> None:
    s = with_overrides(load_settings(), {"audio.block_size": 256, "server.output": "both", "osc.per_param": None})
    assert s.audio.block_size == 256 and s.server.output == "both"
    with pytest.raises(SettingsError, match="audio.block_size"):
        with_overrides(s, {"audio.block_size": "big"})
    with pytest.raises(SettingsError, match="unknown key 'blok'"):
        with_overrides(s, {"audio.blok": 1})
