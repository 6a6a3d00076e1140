"""Worker threads of the matching env: one pass of features + loss, identical results for any thread count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.match.hearing import FeaturesHearing, flatten_target
from agents.match.probe import ProbeRenderer, hear_and_loss, hear_targets
from agents.match.threads import check_threads, default_threads, map_blocks
from agents.match.vector import PresetMatchVectorEnv
from settings.loader import Settings, with_overrides
from tests.agents.test_match_doubles import FakeHearing, FakeRenderer


def _heard_equal(a: object, b: object) -> bool:
    names = ("logmel_db", "mfcc", "centroid_hz", "loudness_db")
    return all(torch.equal(getattr(a, n), getattr(b, n)) for n in names)


def test_map_blocks_keeps_order_and_raises_worker_errors() -> None:
    blocks = list(range(7))
    for threads in (1, 2, 3, 10):
        assert map_blocks(lambda b: b * b, blocks, threads) == [b * b for b in blocks]

    def fail_on_five(b: int) -> int:
        if b == 5:
            raise RuntimeError("block five")
        return b

    with pytest.raises(RuntimeError, match="block five"):
        map_blocks(fail_on_five, blocks, 2)
    with pytest.raises(ValueError, match="worker threads"):
        check_threads(0)
    assert 1 <= default_threads() <= 2


def test_map_blocks_hands_blocks_to_whichever_thread_is_free() -> None:
    import threading
    import time

    who: dict[int, int] = {}

    def slow_first(b: int) -> int:
        who[b] = threading.get_ident()
        if b == 0:
            time.sleep(0.3)  # the other thread meanwhile takes every remaining block
        return -b

    assert map_blocks(slow_first, list(range(6)), 2) == [0, -1, -2, -3, -4, -5]
    assert [b for b, ident in who.items() if ident == who[0]] == [0]


def test_hear_and_loss_equals_hear_plus_loss_for_any_thread_count() -> None:
    settings = Settings()
    hearing = FeaturesHearing(settings)
    renderer = ProbeRenderer(settings)
    generator = torch.Generator().manual_seed(3)
    audio = renderer(torch.rand(40, 24, generator=generator))
    targets = hearing.cache_targets(renderer(torch.rand(40, 24, generator=generator)))
    assert len(hearing._blocks(audio)[1]) >= 2  # several blocks to share out
    heard, loss = hearing.hear(audio), hearing.loss(audio, targets)
    for threads in (1, 2, 3):
        both = hear_and_loss(hearing, audio, targets, threads=threads)
        assert _heard_equal(both[0], heard) and torch.equal(both[1], loss), threads
        assert _heard_equal(hearing.hear(audio, threads=threads), heard)
    one = {k: v[:1] for k, v in targets.items()}  # a single target broadcast over the batch
    torch.testing.assert_close(hearing.hear_and_loss(audio, one, threads=2)[1], hearing.loss(audio, one))
    fake = FakeHearing()  # a hearing without hear_and_loss: the two calls
    fake_targets = fake.cache_targets(audio)
    assert torch.equal(hear_and_loss(fake, audio, fake_targets, threads=2)[1], fake.loss(audio, fake_targets))


def test_hear_targets_equals_cache_targets_plus_hear_for_any_thread_count() -> None:
    settings = Settings()
    hearing = FeaturesHearing(settings)
    audio = ProbeRenderer(settings)(torch.rand(40, 24, generator=torch.Generator().manual_seed(5)))
    cache, heard = hearing.cache_targets(audio), hearing.hear(audio)
    for threads in (1, 2, 3):
        both = hear_targets(hearing, audio, threads=threads)
        assert both[0].keys() == cache.keys() and all(torch.equal(both[0][k], cache[k]) for k in cache), threads
        assert _heard_equal(both[1], heard), threads
    whole = flatten_target(hearing.loss_module.prepare_target(audio))  # one block: the same to rounding
    for key in cache:
        torch.testing.assert_close(cache[key], whole[key], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="rows"):
        hearing.loss_module.prepare_target(audio[:3], analysis=hearing.loss_module.analyze(audio[:4]))
    fake = FakeHearing()  # a hearing without hear_targets: the two calls
    fake_cache, fake_heard = hear_targets(fake, audio, threads=2)
    assert (
        torch.equal(fake_heard.logmel_db, fake.hear(audio).logmel_db)
        and fake_cache.keys() == fake.cache_targets(audio).keys()
    )


def test_renderer_threads_do_not_change_the_audio_and_are_restored() -> None:
    settings = Settings()
    params = torch.rand(9, 24, generator=torch.Generator().manual_seed(4))
    before = torch.get_num_threads()
    plain = ProbeRenderer(settings)(params)
    assert torch.equal(ProbeRenderer(settings, threads=before + 1)(params), plain)
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        ProbeRenderer(settings, threads=0)


def test_vector_env_is_identical_with_one_or_two_worker_threads() -> None:
    settings = with_overrides(Settings(), {"match.max_steps": 3, "match.stage": 5})
    runs = []
    for threads in (1, 2):
        env = PresetMatchVectorEnv(20, settings, worker_threads=threads)
        assert env.engine.worker_threads == threads
        env.action_space.seed(7)
        steps = [env.reset(seed=5)[0]]
        for _ in range(4):  # crosses an automatic reset (T = 3)
            obs, reward, term, trunc, infos = env.step(env.action_space.sample())
            steps += [obs, reward, term, trunc, infos["loss"]]
        runs.append(steps)
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_doubles_still_drive_the_engine_with_threads() -> None:
    env = PresetMatchVectorEnv(6, Settings(), renderer=FakeRenderer(), hearing=FakeHearing(), worker_threads=2)
    env.reset(seed=0)
    obs, *_ = env.step(env.action_space.sample())
    assert obs.shape == (6, env.single_observation_space.shape[0])
