"""Load `environment_settings.yaml` into frozen dataclasses, one per section.

Input: a YAML file path (default: the repository's `environment_settings.yaml`).
Output: a `Settings` instance. Unknown keys, missing sections and wrong types raise
`SettingsError` with the key path, the file and the expected type named.

Each section's dataclass lives with the package that owns it (`synth.config`, `features.config`,
...); this module only composes and validates them. Every field has a default, so a settings file
may leave keys out; it may never add keys the dataclasses do not know.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from agents.config import ImitateSettings, MatchSettings, TrainingSettings
from corpus.config import CorpusSettings
from features.config import FeatureSettings, LossSettings
from server.config import AudioSettings, OscSettings, ServerSettings
from synth.config import SynthSettings

DEFAULT_SETTINGS_PATH = Path(__file__).resolve().parent.parent / "environment_settings.yaml"

T = TypeVar("T")


class SettingsError(ValueError):
    """A settings file that does not match the dataclasses (one line, names key and file)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    synth: SynthSettings = dataclasses.field(default_factory=SynthSettings)
    features: FeatureSettings = dataclasses.field(default_factory=FeatureSettings)
    loss: LossSettings = dataclasses.field(default_factory=LossSettings)
    corpus: CorpusSettings = dataclasses.field(default_factory=CorpusSettings)
    match: MatchSettings = dataclasses.field(default_factory=MatchSettings)
    imitate: ImitateSettings = dataclasses.field(default_factory=ImitateSettings)
    training: TrainingSettings = dataclasses.field(default_factory=TrainingSettings)
    audio: AudioSettings = dataclasses.field(default_factory=AudioSettings)
    osc: OscSettings = dataclasses.field(default_factory=OscSettings)
    server: ServerSettings = dataclasses.field(default_factory=ServerSettings)
    source: str = "<defaults>"


def load_settings(path: str | Path | None = None) -> Settings:
    """Read and validate a settings file; `None` means the repository default."""
    file = Path(path) if path is not None else DEFAULT_SETTINGS_PATH
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{file}: cannot read settings file ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SettingsError(f"{file}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SettingsError(f"{file}: top level must be a mapping of sections, got {type(data).__name__}")
    data = {k: v for k, v in data.items() if k != "source"} | {"source": str(file)}
    return build_dataclass(Settings, data, key_path="", file=str(file))


def with_overrides(settings: T, overrides: dict[str, Any]) -> T:
    """Return a copy with dotted keys replaced (`{"audio.block_size": 256}`), type-checked.

    CLI flags use this so that flags override settings through the same validation.
    """
    for dotted, value in overrides.items():
        if value is None:
            continue
        settings = _replace_dotted(settings, dotted.split("."), value, dotted)
    return settings


def _replace_dotted(obj: Any, parts: list[str], value: Any, dotted: str) -> Any:
    hints = get_type_hints(type(obj))
    head = parts[0]
    if head not in hints:
        raise SettingsError(f"override '{dotted}': unknown key '{head}' in {type(obj).__name__}")
    if len(parts) == 1:
        checked = _check(hints[head], value, key_path=dotted, file="<command line>")
        return dataclasses.replace(obj, **{head: checked})
    child = _replace_dotted(getattr(obj, head), parts[1:], value, dotted)
    return dataclasses.replace(obj, **{head: child})


def build_dataclass(cls: type[T], data: Any, *, key_path: str, file: str) -> T:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    where = key_path or "top level"
    if not isinstance(data, dict):
        raise SettingsError(f"{file}: '{where}' must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise SettingsError(f"{file}: unknown key '{_join(key_path, str(key))}' (known here: {known})")
    kwargs = {key: _check(hints[key], value, key_path=_join(key_path, key), file=file) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{file}: '{where}': {exc}") from exc


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check(tp: Any, value: Any, *, key_path: str, file: str) -> Any:
    """Validate (and lightly coerce: int -> float, list -> tuple) one value against a type hint."""

    def fail() -> SettingsError:
        return SettingsError(f"{file}: '{key_path}' must be {_type_name(tp)}, got {value!r} ({type(value).__name__})")

    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, key_path=key_path, file=file)  # type: ignore[arg-type]
    if tp is Any:
        return value
    if origin is Literal:
        if any(value == choice and type(value) is type(choice) for choice in get_args(tp)):
            return value
        raise SettingsError(f"{file}: '{key_path}' must be one of {list(get_args(tp))}, got {value!r}")
    if origin in (Union, types.UnionType):
        errors = []
        for arg in get_args(tp):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check(arg, value, key_path=key_path, file=file)
            except SettingsError as exc:
                errors.append(exc)
        raise fail()
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise fail()
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail()
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise fail()
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check(args[0], v, key_path=f"{key_path}[{i}]", file=file) for i, v in enumerate(value))
        if len(args) != len(value):
            raise fail()
        return tuple(
            _check(a, v, key_path=f"{key_path}[{i}]", file=file)
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        key_tp, val_tp = get_args(tp)
        if not isinstance(value, dict):
            raise fail()
        return types.MappingProxyType(
            {
                _check(key_tp, k, key_path=f"{key_path}.{k}", file=file): _check(
                    val_tp, v, key_path=f"{key_path}.{k}", file=file
                )
                for k, v in value.items()
            }
        )
    if isinstance(tp, typing.TypeVar):
        return value
    raise SettingsError(f"{file}: '{key_path}': unsupported settings type {_type_name(tp)}")
