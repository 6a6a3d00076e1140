"""Baselines of the listening-agent evaluation and the imitation metrics.

Input: a `Performance` (agents.imitate.perform), the model's descriptor scale and names, the
controlled parameters, and a `SoundDescriber` (render + analyze) for building candidate tables.
Output:
- `imitation_metrics(perf, ...)`: normalized descriptor RMSE between input and output over all
  ticks (overall and per descriptor; where both are silent only loudness counts, as in training),
  the same over ticks with the gate open, and smoothness (mean |parameter change| per tick over
  the controlled parameters);
- `NearestNeighbourController`: per tick, the parameters of the lookup-table entry (random presets
  x a grid of notes, rendered and analysed) nearest to the input frame at the nearest table note;
- `static_candidates` + `screen_static`: factory presets and random presets, ranked by how well
  their steady sound matches the input's gated frames (the best few are then performed in full);
- `corpus_start_preset`: the same screen over a training corpus, for the model's start preset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.imitate.perform import Performance
from agents.imitate.reward import match_silence
from agents.imitate.sound import SoundDescriber
from agents.imitate.targets import random_presets
from agents.observation import DescriptorScale
from features.names import INDEX
from synth.config import SynthSettings
from synth.note_gate import follow_sequence, hz_to_midi
from synth.params import default_vector

SCALED_CLIP = (-0.5, 1.5)
TABLE_NOTES_MIDI = tuple(range(36, 85, 4))
START_CANDIDATES = 256  # random presets screened for a model's start preset
_FOLLOW = ("pitch_hz", "pitch_confidence", "loudness_db")


def scaled_frames(frames: np.ndarray, scale: DescriptorScale) -> np.ndarray:
    """Full descriptor frames [T, K_all] -> the scale's descriptors in [0,1] (clipped as in training)."""
    idx = [INDEX[n] for n in scale.names]
    return np.clip(scale.to_0to1(frames[:, idx]), *SCALED_CLIP)


def imitation_metrics(
    perf: Performance, scale: DescriptorScale, controlled: tuple[int, ...], silence_db: float
) -> dict[str, object]:
    """RMSE between the scaled input and output descriptors (`scale.names`), and smoothness.

    Ticks where input and output are both below `silence_db` compare loudness only
    (`agents.imitate.reward.match_silence`), as the training reward does. `error_share` splits the
    summed squared error by kind of tick (`error_shares`)."""
    loud = INDEX["loudness_db"]
    both_silent = (perf.input_desc[:, loud] < silence_db) & (perf.output_desc[:, loud] < silence_db)
    target = scaled_frames(perf.input_desc, scale)
    output = match_silence(scaled_frames(perf.output_desc, scale), target, scale.names, both_silent)
    err = output - target
    per = np.sqrt(np.mean(err**2, axis=0))
    on = perf.gates
    deltas = np.abs(np.diff(perf.params[:, list(controlled)], axis=0))
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "rmse_gate_on": float(np.sqrt(np.mean(err[on] ** 2))) if on.any() else None,
        "per_descriptor": {n: float(v) for n, v in zip(scale.names, per, strict=True)},
        "smoothness": float(deltas.mean()) if deltas.size else 0.0,
        "silent_ticks": int(both_silent.sum()),
        "error_share": error_shares(err, perf, silence_db),
    }


def error_shares(err: np.ndarray, perf: Performance, silence_db: float) -> dict[str, float]:
    """Fractions of the summed squared error `err` ([T, K]) by kind of tick, in this order of precedence:
    `rest` (input and output below `silence_db`), `onset` (the tick the gate opens: the synth, one
    block behind the input, is still silent), `before_gate` (gate closed, input sounding: an entrance
    softer than the gate's threshold), `release` (gate closed, the synth's tail sounding), `gate_open`
    (every other tick with the gate open). The first three cost every controller alike."""
    loud = INDEX["loudness_db"]
    in_sounding = perf.input_desc[:, loud] >= silence_db
    out_sounding = perf.output_desc[:, loud] >= silence_db
    gates = perf.gates.astype(bool)
    onset = gates & ~np.concatenate(([False], gates[:-1]))
    kinds = {
        "rest": ~in_sounding & ~out_sounding,
        "onset": onset,
        "before_gate": ~gates & in_sounding,
        "release": ~gates & ~in_sounding & out_sounding,
        "gate_open": gates & ~onset,
    }
    per_tick = np.sum(np.asarray(err, dtype=np.float64) ** 2, axis=1)
    total = float(per_tick.sum())
    taken = np.zeros(per_tick.shape, dtype=bool)
    shares: dict[str, float] = {}
    for name, mask in kinds.items():
        mask = mask & ~taken
        taken |= mask
        shares[name] = float(per_tick[mask].sum() / total) if total > 0 else 0.0
    return shares


@dataclass(frozen=True)
class LookupTable:
    params: np.ndarray  # [M, 24]
    notes_midi: np.ndarray  # [M]
    scaled: np.ndarray  # [M, R] scaled reward descriptors


def build_table(
    describer: SoundDescriber,
    scale: DescriptorScale,
    controlled: tuple[int, ...],
    n_presets: int,
    seed: int,
    notes_midi: tuple[int, ...] = TABLE_NOTES_MIDI,
) -> LookupTable:
    """Render `n_presets` random presets at every note of `notes_midi` and analyse them."""
    rng = np.random.default_rng(seed)
    presets = random_presets(rng, n_presets, default_vector(), controlled)
    params = np.tile(presets, (len(notes_midi), 1))
    notes = np.repeat(np.asarray(notes_midi, dtype=np.float32), n_presets)
    frames = describer.describe(params, notes, np.ones(len(notes), dtype=bool))
    return LookupTable(params, notes, scaled_frames(frames, scale))


class NearestNeighbourController:
    """Jump to the table's nearest entry for each input frame (no change while the input is silent)."""

    def __init__(self, table: LookupTable, scale: DescriptorScale, confidence_min: float, gate_off_db: float) -> None:
        self.table = table
        self.idx = np.array([INDEX[n] for n in scale.names])
        self.scale = scale
        self.confidence_min = confidence_min
        self.gate_off_db = gate_off_db
        self.note_values = np.unique(table.notes_midi)
        self.rows = {float(n): np.flatnonzero(table.notes_midi == n) for n in self.note_values}
        self.note = 60.0

    def reset(self, params_0to1: np.ndarray) -> None:
        self.note = 60.0

    def step(self, agent_all: np.ndarray, target_all: np.ndarray, params_0to1: np.ndarray) -> None:
        pitch, conf = float(target_all[INDEX["pitch_hz"]]), float(target_all[INDEX["pitch_confidence"]])
        if pitch > 0 and conf >= self.confidence_min:
            self.note = hz_to_midi(pitch)
        if float(target_all[INDEX["loudness_db"]]) < self.gate_off_db:
            return
        near = float(self.note_values[np.argmin(np.abs(self.note_values - self.note))])
        rows = self.rows[near]
        target = np.clip(self.scale.to_0to1(target_all[self.idx]), *SCALED_CLIP)
        best = rows[np.argmin(np.sum((self.table.scaled[rows] - target) ** 2, axis=1))]
        params_0to1[:] = self.table.params[best]


def static_candidates(controlled: tuple[int, ...], n_random: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Factory presets (by name) and `n_random` random presets (`random_<i>`): names, [C, 24]."""
    from synth.presets import factory_presets

    names, vectors = [], []
    for name, preset in sorted(factory_presets().items()):
        names.append(name)
        vectors.append(np.asarray(preset.params_0to1, dtype=np.float32))
    rng = np.random.default_rng(seed)
    randoms = random_presets(rng, n_random, default_vector(), controlled)
    names += [f"random_{i}" for i in range(n_random)]
    return names, np.concatenate([np.stack(vectors), randoms]) if vectors else randoms


def screen_static(
    describer: SoundDescriber,
    candidates: np.ndarray,
    input_desc: np.ndarray,
    gates: np.ndarray,
    notes_midi: np.ndarray,
    scale: DescriptorScale,
) -> np.ndarray:
    """Candidate order, best first: mean squared error of each candidate's steady sound (at the file's
    median sounding note) against the input's gated frames."""
    on = gates if gates.any() else np.ones_like(gates)
    note = float(np.median(notes_midi[on]))
    frames = describer.describe(candidates, np.full(len(candidates), note, dtype=np.float32),
                                np.ones(len(candidates), dtype=bool))  # fmt: skip
    cand = scaled_frames(frames, scale)  # [C, R]
    target = scaled_frames(input_desc[on], scale)  # [T_on, R]
    err = ((target[None, :, :] - cand[:, None, :]) ** 2).mean(axis=(1, 2))
    return np.argsort(err)


def corpus_start_preset(
    describer: SoundDescriber,
    corpus_tracks: tuple[np.ndarray, ...],
    scale: DescriptorScale,
    controlled: tuple[int, ...],
    synth: SynthSettings,
    tick_s: float,
    n_random: int = START_CANDIDATES,
    seed: int = 0,
) -> np.ndarray:
    """The model's start preset `[24]`: the table's defaults with the controlled parameters of the random
    preset whose steady sound best matches the corpus's gated frames (`screen_static` over all tracks,
    gates and notes from the note/gate follower). The agent then starts a performance from a sound of
    the corpus's kind instead of the table's default (volume 0.7: ~35 dB over a soft first note)."""
    followed = [follow_sequence(synth, tick_s, *(t[:, INDEX[n]] for n in _FOLLOW)) for t in corpus_tracks]
    notes, gates = (np.concatenate(parts) for parts in zip(*followed, strict=True))
    candidates = random_presets(np.random.default_rng(seed), n_random, default_vector(), controlled)
    order = screen_static(describer, candidates, np.concatenate(corpus_tracks), gates, notes, scale)
    return candidates[int(order[0])].copy()
