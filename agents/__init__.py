"""Environments, policies, training and evaluation.

Importing `agents` registers the Gymnasium environments of SPEC.md (lazily: the environment
modules are imported only when `gymnasium.make` is called):
- `SoundGym/PresetMatch-v0` -> `agents.match.env:PresetMatchEnv`
- `SoundGym/Imitate-v0` -> `agents.imitate.env:ImitateEnv`
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

ENV_IDS = {
    "SoundGym/PresetMatch-v0": "agents.match.env:PresetMatchEnv",
    "SoundGym/Imitate-v0": "agents.imitate.env:ImitateEnv",
}

for _env_id, _entry_point in ENV_IDS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point=_entry_point)
