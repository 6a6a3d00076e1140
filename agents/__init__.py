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

# default time limits (TimeLimit wrappers): match.max_steps and imitate.episode_steps of the shipped
# settings; `gymnasium.make(id, max_episode_steps=...)` overrides them.
if "SoundGym/PresetMatch-v0" not in registry:
    register(
        id="SoundGym/PresetMatch-v0",
        entry_point=ENV_IDS["SoundGym/PresetMatch-v0"],
        vector_entry_point="agents.match.vector:PresetMatchVectorEnv",
        max_episode_steps=50,
    )
if "SoundGym/Imitate-v0" not in registry:
    register(id="SoundGym/Imitate-v0", entry_point=ENV_IDS["SoundGym/Imitate-v0"], max_episode_steps=200)
