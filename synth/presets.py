"""Serum-lite presets: JSON files <-> `Preset`, validated by the schema generated from the table.

Input: a preset JSON file (name, version, parameters by name as normalized values, optional note
and tags). Output: a `Preset` with a [24] float32 vector in wire order. Every problem raises
`PresetError` with one line naming the file and the offending field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from synth.params import N_PARAMS, PARAM_NAMES, PARAM_TABLE_VERSION, PARAMS, snap_vector

FACTORY_DIR = Path(__file__).resolve().parent / "presets"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "serum_lite_preset.schema.json"
SCHEMA_ID = "https://soundgym.invalid/schemas/serum_lite_preset.schema.json"


class PresetError(ValueError):
    """A preset file or value that cannot be used (one line: file and field named)."""


@dataclass(frozen=True)
class Preset:
    name: str
    params_0to1: np.ndarray  # [24] float32, wire order, snapped
    version: str = PARAM_TABLE_VERSION
    note: int | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        vec = np.asarray(self.params_0to1, dtype=np.float32)
        if vec.shape != (N_PARAMS,):
            raise PresetError(f"preset '{self.name}': expected {N_PARAMS} parameters, got shape {vec.shape}")
        if not np.all(np.isfinite(vec)):
            bad = PARAM_NAMES[int(np.flatnonzero(~np.isfinite(vec))[0])]
            raise PresetError(f"preset '{self.name}': parameter '{bad}' is not a finite number")
        object.__setattr__(self, "params_0to1", snap_vector(vec))

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "parameters": {n: round(float(v), 6) for n, v in zip(PARAM_NAMES, self.params_0to1, strict=True)},
        }
        if self.note is not None:
            out["note"] = int(self.note)
        if self.tags:
            out["tags"] = list(self.tags)
        return out


def preset_schema() -> dict[str, Any]:
    """The JSON schema of a preset file, generated from the parameter table."""
    params = {
        p.name: {
            "type": "number",
            "minimum": 0.0,
            "maximum": 1.0,
            "description": f"{p.doc}; {p.low:g}..{p.high:g} {p.unit}, {p.curve}{', snapped' if p.snap else ''}",
        }
        for p in PARAMS
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Serum-lite preset",
        "description": "Parameters by name as normalized values in [0, 1] (wire order in synth/params.py).",
        "type": "object",
        "required": ["name", "version", "parameters"],
        "additionalProperties": False,
        "properties": {
            "$schema": {"type": "string"},
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "version": {"type": "string", "pattern": r"^1\.[0-9]+$", "description": "parameter table version"},
            "parameters": {
                "type": "object",
                "required": list(PARAM_NAMES),
                "additionalProperties": False,
                "properties": params,
            },
            "note": {"type": "integer", "minimum": 0, "maximum": 127, "description": "MIDI note to audition"},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        },
    }


_VALIDATOR = jsonschema.Draft202012Validator(preset_schema())


def _field_name(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"{path}.{missing}" if path else missing
    if error.validator == "additionalProperties":
        extra = error.message.split("'")[1] if "'" in error.message else error.message
        return f"{path}.{extra}" if path else extra
    return path or "(top level)"


def preset_from_dict(data: Any, *, source: str = "<preset>") -> Preset:
    """Validate a decoded JSON object and build a `Preset`."""
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        err = errors[0]
        raise PresetError(f"{source}: field '{_field_name(err)}': {err.message}")
    if not isinstance(data, Mapping):  # unreachable after validation; keeps type checkers honest
        raise PresetError(f"{source}: a preset must be a JSON object")
    vec = np.array([data["parameters"][n] for n in PARAM_NAMES], dtype=np.float32)
    return Preset(
        name=data["name"],
        params_0to1=vec,
        version=data["version"],
        note=data.get("note"),
        tags=tuple(data.get("tags", ())),
    )


def load_preset(path: str | Path) -> Preset:
    """Read and validate a preset file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"{file}: cannot read preset ({getattr(exc, 'strerror', None) or exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PresetError(f"{file}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    return preset_from_dict(data, source=str(file))


def save_preset(preset: Preset, path: str | Path) -> None:
    """Write a preset as pretty JSON (validated before writing)."""
    data = preset.to_json_dict()
    preset_from_dict(data, source=str(path))
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def factory_presets() -> dict[str, Preset]:
    """The shipped presets in `synth/presets/`, by file stem, sorted."""
    return {f.stem: load_preset(f) for f in sorted(FACTORY_DIR.glob("*.json"))}


def write_schema(path: Path = SCHEMA_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(preset_schema(), indent=2) + "\n", encoding="utf-8")
