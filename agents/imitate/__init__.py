"""The listening agent's task: `SoundGym/Imitate-v0` (env), its reward, targets, training and sound sources."""
