"""`import agents` registers both SPEC environment ids, with time limits and the batched vector env."""

from __future__ import annotations

import gymnasium as gym

import agents  # noqa: F401  (registers the ids)


def test_ids_are_registered_with_time_limits() -> None:
    assert gym.spec("SoundGym/PresetMatch-v0").max_episode_steps == 50
    assert gym.spec("SoundGym/Imitate-v0").max_episode_steps == 200
    env = gym.make("SoundGym/Imitate-v0", max_episode_steps=2)
    env.reset(seed=0)
    truncated = [env.step(env.action_space.sample())[3] for _ in range(2)]
    assert truncated == [False, True]


def test_make_vec_uses_the_batched_vector_env_and_its_time_limit() -> None:
    vec = gym.make_vec(
        "SoundGym/PresetMatch-v0", num_envs=3, vectorization_mode="vector_entry_point", max_episode_steps=2
    )
    assert type(vec).__name__ == "PresetMatchVectorEnv"
    obs, _ = vec.reset(seed=0)
    assert obs.shape[0] == 3
    vec.step(vec.action_space.sample())
    _, _, _, truncated, _ = vec.step(vec.action_space.sample())
    assert truncated.all()
