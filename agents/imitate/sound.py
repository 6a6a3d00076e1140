"""What the synth sounds like: parameter vectors (+ note, gate) -> descriptor frames.

Input: normalized parameter vectors `[B, 24]`, MIDI notes `[B]` and gates `[B]`.
Output: descriptor frames `[B, K]` in `features.names.DESCRIPTOR_NAMES` order (physical units).

Two sources (setting `imitate.descriptor_source`):
- `render`: `synth.render.render_batch` renders a short snapshot (`imitate.window_s`, note held)
  and `features.batch.describe_batch` analyses it; the frame is the mean of the last two analysis
  frames (past the attack). A closed gate gives the descriptors of silence (computed once).
- `proxy`: the neural proxy (`agents.proxy.Proxy`, folder `imitate.proxy_dir`) predicts the
  descriptors it was trained on without rendering (the others come from a rendered reference).
- `stream`: the environment plays the live loop itself (`agents.imitate.perform.SynthLoop`); this
  module's `StreamDescriber` gives the steady sound of a held note through the same streaming voice
  and extractor (`STREAM_HOLD_S` held, mean of the last two ticks), for the random-target pool.

Shared by the environment (B = 1 per step), the random targets, the static-preset and
nearest-neighbour baselines (large B).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from features.config import FeatureSettings
from features.names import INDEX, N_DESCRIPTORS
from settings import Settings
from synth.config import SynthSettings

SNAPSHOT_FRAMES = 2  # analysis frames averaged at the end of a snapshot
STREAM_HOLD_S = 0.5  # stream path: a held note's steady sound is taken after this long


class SoundDescriber(Protocol):
    def describe(self, params_0to1: np.ndarray, notes_midi: np.ndarray, gates: np.ndarray) -> np.ndarray: ...


class RenderDescriber:
    """render_batch + describe_batch on CPU torch (no gradients)."""

    def __init__(self, synth: SynthSettings, features: FeatureSettings, window_s: float, chunk: int = 256) -> None:
        if window_s * features.sample_rate_hz < features.window_length:
            raise ValueError(
                f"imitate.window_s={window_s} is shorter than one analysis window "
                f"({features.window_length} frames at {features.sample_rate_hz} Hz)"
            )
        self.synth = synth
        self.features = features
        self.window_s = float(window_s)
        self.chunk = int(chunk)
        self._silence: np.ndarray | None = None

    def silence(self) -> np.ndarray:
        """Descriptors of a silent window `[K]` (cached)."""
        if self._silence is None:
            from features.batch import describe_batch

            n = int(round(self.window_s * self.features.sample_rate_hz))
            with torch.no_grad():
                frames = describe_batch(torch.zeros(1, n), self.features.sample_rate_hz, self.features)
            self._silence = frames[0, -SNAPSHOT_FRAMES:].mean(dim=0).double().numpy()
        return self._silence

    def describe(self, params_0to1: np.ndarray, notes_midi: np.ndarray, gates: np.ndarray) -> np.ndarray:
        from features.batch import describe_batch
        from synth.render import render_batch

        params = np.atleast_2d(np.asarray(params_0to1, dtype=np.float32))
        notes = np.atleast_1d(np.asarray(notes_midi, dtype=np.float32))
        gates = np.atleast_1d(np.asarray(gates, dtype=bool))
        out = np.empty((params.shape[0], N_DESCRIPTORS), dtype=np.float64)
        out[~gates] = self.silence()
        on = np.flatnonzero(gates)
        sr = self.features.sample_rate_hz
        for start in range(0, on.size, self.chunk):
            idx = on[start : start + self.chunk]
            with torch.no_grad():
                audio = render_batch(
                    torch.from_numpy(params[idx]),
                    torch.from_numpy(notes[idx]),
                    sample_rate_hz=sr,
                    duration_s=self.window_s,
                    note_off_s=None,
                    seed=self.synth.seed,
                )
                frames = describe_batch(audio, sr, self.features)
            out[idx] = frames[:, -SNAPSHOT_FRAMES:].mean(dim=1).double().numpy()
        return out


class ProxyDescriber:
    """The neural proxy (`agents.proxy.Proxy`, folder `imitate.proxy_dir`) in place of render + analyze.

    Descriptors the proxy does not predict are taken from a rendered reference (the start preset
    at the default note), so only the proxy's own names follow the parameters.
    """

    def __init__(self, synth: SynthSettings, features: FeatureSettings, proxy_dir: str) -> None:
        from agents.proxy import Proxy

        self.proxy = Proxy.load(proxy_dir)
        self.features = features
        self.columns = np.array([INDEX[n] for n in self.proxy.descriptor_names], dtype=np.intp)
        window_s = max(0.1, 2 * features.window_length / features.sample_rate_hz)
        self._render = RenderDescriber(synth, features, window_s=window_s)
        self._reference: np.ndarray | None = None

    def describe(self, params_0to1: np.ndarray, notes_midi: np.ndarray, gates: np.ndarray) -> np.ndarray:
        params = np.atleast_2d(np.asarray(params_0to1, dtype=np.float32))
        notes = np.atleast_1d(np.asarray(notes_midi, dtype=np.float32))
        gates = np.atleast_1d(np.asarray(gates, dtype=bool))
        if self._reference is None:
            from synth.params import default_vector

            self._reference = self._render.describe(default_vector()[None, :], np.array([60.0]), np.array([True]))[0]
        out = np.repeat(self._reference[None, :], params.shape[0], axis=0)
        out[~gates] = self._render.silence()
        on = np.flatnonzero(gates)
        if on.size:
            with torch.no_grad():
                pred = self.proxy.predict(torch.from_numpy(params[on]), torch.from_numpy(notes[on]))
            out[np.ix_(on, self.columns)] = pred.double().numpy()
        return out


class StreamDescriber:
    """The steady sound of a held note through the live loop's streaming voice and extractor.

    Each row: a fresh voice at the parameters, note on (gate rows only), `hold_s` of tick blocks,
    the mean of the last `SNAPSHOT_FRAMES` ticks' descriptors (a closed gate: the silent voice's).
    """

    def __init__(self, settings: Settings, hold_s: float = STREAM_HOLD_S) -> None:
        from agents.imitate.perform import SynthLoop

        self.loop = SynthLoop(settings)
        self.n_ticks = max(SNAPSHOT_FRAMES + 1, int(round(hold_s / self.loop.tick_s)))

    def describe(self, params_0to1: np.ndarray, notes_midi: np.ndarray, gates: np.ndarray) -> np.ndarray:
        params = np.atleast_2d(np.asarray(params_0to1, dtype=np.float32))
        notes = np.atleast_1d(np.asarray(notes_midi, dtype=np.float32))
        gates = np.atleast_1d(np.asarray(gates, dtype=bool))
        out = np.zeros((params.shape[0], N_DESCRIPTORS), dtype=np.float64)
        for i in range(params.shape[0]):
            self.loop.reset(params[i])
            if gates[i]:
                self.loop.voice.note_on(float(notes[i]))
            for t in range(self.n_ticks):
                frame = self.loop.render()
                if t >= self.n_ticks - SNAPSHOT_FRAMES:
                    out[i] += frame
        return out / SNAPSHOT_FRAMES


def make_describer(
    source: str,
    synth: SynthSettings,
    features: FeatureSettings,
    window_s: float,
    proxy_dir: str = "models/proxy",
    settings: Settings | None = None,
) -> SoundDescriber:
    """The describer of `imitate.descriptor_source` (`stream` needs the whole `settings`)."""
    if source == "render":
        return RenderDescriber(synth, features, window_s)
    if source == "proxy":
        return ProxyDescriber(synth, features, proxy_dir)
    if source == "stream":
        if settings is None:
            raise ValueError("imitate.descriptor_source 'stream' needs the settings (make_describer(..., settings=))")
        return StreamDescriber(settings)
    raise ValueError(f"unknown imitate.descriptor_source '{source}' (known: render, proxy, stream)")
