"""environment_settings.yaml -> frozen dataclasses. Nothing else reads the YAML."""

from settings.loader import DEFAULT_SETTINGS_PATH, Settings, SettingsError, load_settings, with_overrides

__all__ = ["DEFAULT_SETTINGS_PATH", "Settings", "SettingsError", "load_settings", "with_overrides"]
