"""Preset matching (`SoundGym/PresetMatch-v0`): recreate a target Serum-lite preset step by step.

Stages, one module each: `curriculum` (stages, target streams) -> `probe` (render and hear) ->
`engine` (N episodes, one batched render per step) -> faces `env` (Gymnasium Env), `vector`
(Gymnasium VectorEnv, SB3 VecEnv); `actions` and `layout` define the action and observation;
`rollout` runs a policy on fixed targets; `train` is `python train.py --task match`.
"""
