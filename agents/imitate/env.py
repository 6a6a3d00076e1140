"""`SoundGym/Imitate-v0`: follow a musician's descriptor stream by adjusting the synth.

Input (constructor): settings (`imitate.*`, `synth.*` note/gate rules, `features.*`), an analysed
corpus folder (default `corpus.default`), optionally a prepared `TargetCorpus` / `SoundDescriber`
(tests and training share one). Each step:

1. the action moves the controlled parameters: continuous `a in [-1,1]^P` -> `delta = a * delta_max`,
   or discrete `k in {0,1,2}^P` (down/stay/up) -> `delta = (k - 1) * delta_max`; not while the
   synth's gate is closed (`synth.hold_while_gate_closed`, as in evaluation and on stage: a rest
   does not move the sound, so the next note starts with the last one's);
2. the target advances one frame (corpus track; a random preset's frame, held (static_random)
   or jumping with probability `dynamic_change_prob` (dynamic_random); `mixed` draws corpus for a
   share `corpus_frac` of the episodes, else one of the random modes);
3. the synth's note and gate follow the target's `pitch_hz` / `pitch_confidence` / `loudness_db`
   through `synth.note_gate.NoteGateFollower`, exactly as on stage;
4. the agent's descriptors come from `agents.imitate.sound` (render + analyze, or the proxy), or,
   with `imitate.descriptor_source: stream`, from the live loop itself (`agents.imitate.perform.SynthLoop`,
   the code `perform` runs): a streaming voice renders one tick block with the parameters and the
   follower's note/gate of the previous tick, analysed by the streaming extractor, so the agent
   hears attacks, releases and the one-tick note lag exactly as in evaluation and on stage;
5. reward = `agents.imitate.reward.ImitationReward` on the rewarded descriptors, scaled to [0,1]
   (when agent and target are both silent only loudness counts: `reward.match_silence`).

Output: the observation of `agents.observation` (agent, target, controlled params, history),
the reward, `terminated=False` (a performance has no goal state), `truncated=False` (the time
limit is the `TimeLimit` wrapper of `make_env`), and `info` with `rmse`, `mode`, `gate`, `note_midi`.
Randomness comes only from `self.np_random` (seeded by `reset(seed=...)`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from agents.imitate.perform import SynthLoop
from agents.imitate.reward import ImitationReward, match_silence, reward_weights
from agents.imitate.sound import SoundDescriber, make_describer
from agents.imitate.targets import TargetCorpus, corpus_scale, load_corpus, random_target_pool
from agents.observation import OBS_CLIP, DescriptorScale, ObservationBuilder
from features.names import INDEX, expand
from settings import Settings, load_settings
from synth.note_gate import NoteGateFollower
from synth.params import default_vector, indices_of

MODES = ("corpus", "static_random", "dynamic_random", "mixed")
SCALED_CLIP = (-0.5, 1.5)  # scaled descriptors are clipped to this before the RMSE
FOLLOW_NAMES = ("pitch_hz", "pitch_confidence", "loudness_db")


class ImitateEnv(gym.Env):
    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        settings: Settings | None = None,
        corpus: str | Path | None = None,
        *,
        target_corpus: TargetCorpus | None = None,
        describer: SoundDescriber | None = None,
        scale: DescriptorScale | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        if render_mode is not None:
            raise ValueError(f"ImitateEnv has no render modes, got render_mode={render_mode!r}")
        self.settings = settings if settings is not None else load_settings()
        im = self.settings.imitate
        if im.mode not in MODES:
            raise ValueError(f"unknown imitate.mode '{im.mode}' (known: {', '.join(MODES)})")
        self.descriptor_names = expand(im.features_keep)
        self.reward_names = expand(im.features_reward)
        self._obs_idx = np.array([INDEX[n] for n in self.descriptor_names])
        self._follow_idx = [INDEX[n] for n in FOLLOW_NAMES]
        self._loud_idx = INDEX["loudness_db"]
        self.controlled = indices_of(im.controlled_params)
        self.corpus = target_corpus or load_corpus(
            corpus if corpus is not None else self.settings.corpus.default, required=self.descriptor_names
        )
        self.scale = (scale or corpus_scale(self.corpus)).subset(self.descriptor_names)
        self.describer = describer or make_describer(
            im.descriptor_source, self.settings.synth, self.settings.features, im.window_s, im.proxy_dir, self.settings
        )
        weights = reward_weights(self.descriptor_names, self.reward_names, im.reward_weights)
        self.reward_fn = ImitationReward(
            weights, im.reward, im.lambda_smooth, im.delta_max, im.prize_threshold, im.prize_value
        )
        self.builder = ObservationBuilder(self.scale, len(self.controlled), im.history)
        self.follower = NoteGateFollower(self.settings.synth, self.corpus.tick_s)
        self.loop = SynthLoop(self.settings) if im.descriptor_source == "stream" else None
        if self.loop is not None and abs(self.loop.tick_s - self.corpus.tick_s) > 1e-6:
            raise ValueError(
                f"{self.corpus.path}: corpus tick {self.corpus.tick_s:.4f} s differs from the live tick "
                f"{self.loop.tick_s:.4f} s (features.hop_length / sample_rate_hz): re-analyse the corpus"
            )
        self.start_preset = default_vector()
        p = len(self.controlled)
        self.observation_space = gym.spaces.Box(-OBS_CLIP, OBS_CLIP, shape=(self.builder.size,), dtype=np.float32)
        if im.action == "continuous":
            self.action_space: gym.Space = gym.spaces.Box(-1.0, 1.0, shape=(p,), dtype=np.float32)
        elif im.action == "discrete":
            self.action_space = gym.spaces.MultiDiscrete(np.full(p, 3, dtype=np.int64))
        else:
            raise ValueError(f"unknown imitate.action '{im.action}' (known: continuous, discrete)")
        self._pool: np.ndarray | None = None
        self.params = self.start_preset.copy()
        self.mode = "corpus"
        self._track = 0
        self._frame = 0
        self._pool_index = 0
        self._target = np.zeros(len(INDEX))
        self._agent = np.zeros(len(INDEX))
        self._note = float(self.settings.synth.default_note)
        self._gate = False

    # -- targets ------------------------------------------------------------------------------

    def _random_pool(self) -> np.ndarray:
        if self._pool is None:
            im = self.settings.imitate
            self._pool = random_target_pool(
                self.describer, self.np_random, im.random_targets, self.start_preset, self.controlled
            )
        return self._pool

    def _start_target(self, options: dict[str, Any]) -> None:
        im = self.settings.imitate
        mode = options.get("mode", im.mode)
        if mode not in MODES:
            raise ValueError(f"unknown mode '{mode}' (known: {', '.join(MODES)})")
        if mode == "mixed":
            if self.np_random.random() < im.corpus_frac:
                mode = "corpus"
            else:
                mode = "static_random" if self.np_random.random() < 0.5 else "dynamic_random"
        self.mode = mode
        if mode == "corpus":
            self._track = int(options.get("track", self.np_random.integers(len(self.corpus.tracks))))
            n = self.corpus.tracks[self._track].shape[0]
            self._frame = int(options.get("frame", self.np_random.integers(n)))
        else:
            self._pool_index = int(self.np_random.integers(len(self._random_pool())))

    def _advance_target(self) -> None:
        if self.mode == "corpus":
            self._frame += 1
            if self._frame >= self.corpus.tracks[self._track].shape[0]:
                self._track = int(self.np_random.integers(len(self.corpus.tracks)))
                self._frame = 0
        elif self.mode == "dynamic_random" and self.np_random.random() < self.settings.imitate.dynamic_change_prob:
            self._pool_index = int(self.np_random.integers(len(self._random_pool())))

    def _current_target(self) -> np.ndarray:
        if self.mode == "corpus":
            return self.corpus.tracks[self._track][self._frame]
        return self._random_pool()[self._pool_index]

    # -- the synth ----------------------------------------------------------------------------

    def _listen(self) -> None:
        """Follow the target's note/gate, then describe the synth's sound (stream: render, then follow)."""
        self._target = self._current_target()
        if self.loop is not None:
            self._agent = self.loop.render().astype(np.float64)
            self.loop.follow(self._target)
            self._note, self._gate = self.loop.note_midi, self.loop.gate
            return
        pitch_hz, confidence, loudness_db = (float(self._target[i]) for i in self._follow_idx)
        state = self.follower.update(pitch_hz, confidence, loudness_db)
        self._note, self._gate = float(state.note_midi), bool(state.gate)
        self._agent = self.describer.describe(self.params[None, :], np.array([self._note]), np.array([self._gate]))[0]

    def _observe(self) -> np.ndarray:
        agent = self._agent[self._obs_idx]
        target = self._target[self._obs_idx]
        return self.builder.build(agent, target, self.params[list(self.controlled)]).copy()

    @property
    def agent_descriptors(self) -> np.ndarray:
        """The agent's descriptor frame of the current step (all `DESCRIPTOR_NAMES`, physical units; a copy)."""
        return self._agent.copy()

    @property
    def target_descriptors(self) -> np.ndarray:
        """The target's descriptor frame of the current step (all `DESCRIPTOR_NAMES`; a copy)."""
        return np.array(self._target, dtype=np.float64)

    def scaled(self, frame: np.ndarray) -> np.ndarray:
        """Observed descriptors of a full frame, scaled to [0,1] and clipped to SCALED_CLIP."""
        return np.clip(self.scale.to_0to1(frame[self._obs_idx]), *SCALED_CLIP)

    # -- gymnasium API --------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        options = dict(options or {})
        self._start_target(options)
        self.params = self.start_preset.copy()
        if options.get("start", "random") == "random":
            self.params[list(self.controlled)] = self.np_random.random(len(self.controlled), dtype=np.float32)
        self.follower.reset()
        if self.loop is not None:
            self.loop.reset(self.params)
        self.builder.reset()
        self._listen()
        rmse = self.reward_fn(*self._scaled_pair(), np.zeros(0))[1]
        return self._observe(), self._info(rmse)

    def decode_action(self, action: Any) -> np.ndarray:
        """Action -> parameter deltas `[P]` (normalized units)."""
        delta_max = self.settings.imitate.delta_max
        a = np.asarray(action)
        if isinstance(self.action_space, gym.spaces.Box):
            return np.clip(a.astype(np.float32), -1.0, 1.0) * delta_max
        return (a.astype(np.float32) - 1.0) * delta_max

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        ctrl = list(self.controlled)
        before = self.params[ctrl].copy()
        if self._gate or not self.settings.synth.hold_while_gate_closed:
            self.params[ctrl] = np.clip(before + self.decode_action(action), 0.0, 1.0)
        # else a rest: the action is not applied (as on stage: the next note starts with the last sound)
        delta = self.params[ctrl] - before
        if self.loop is not None:
            self.loop.set_params(self.params)
        self._advance_target()
        self._listen()
        reward, rmse = self.reward_fn(*self._scaled_pair(), delta)
        return self._observe(), float(reward), False, False, self._info(rmse)

    def _scaled_pair(self) -> tuple[np.ndarray, np.ndarray]:
        """Scaled agent and target frames, silence matched (`reward.match_silence`)."""
        agent, target = self.scaled(self._agent), self.scaled(self._target)
        off_db = self.settings.synth.gate_off_db
        both_silent = self._agent[self._loud_idx] < off_db and self._target[self._loud_idx] < off_db
        return match_silence(agent, target, self.descriptor_names, both_silent), target

    def _info(self, rmse: float) -> dict[str, Any]:
        return {"rmse": float(rmse), "mode": self.mode, "gate": self._gate, "note_midi": self._note}


def make_env(
    settings: Settings | None = None,
    corpus: str | Path | None = None,
    **kwargs: Any,
) -> gym.Env:
    """`ImitateEnv` wrapped in a `TimeLimit` of `imitate.episode_steps` steps."""
    env = ImitateEnv(settings, corpus, **kwargs)
    return gym.wrappers.TimeLimit(env, max_episode_steps=env.settings.imitate.episode_steps)
