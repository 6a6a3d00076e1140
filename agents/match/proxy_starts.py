"""Extra starting patches for the hybrid agent's refinement, found by the neural proxy (no renders).

Input: the targets' probe audio `[P, N]` (what the agent hears), the policy's patches `[P, 24]`
(held parameters are the target's), the probe's MIDI note and a `agents.proxy.Proxy`.
Output: `[P, k, 24]` patches: the policy's patch with its oscillator section (stage 1's parameters:
the two waves and levels, noise, master volume) replaced by the `k` of `candidates` random settings
whose predicted descriptors lie nearest the target's.

Why the oscillators: where the hybrid fails at stages 1-3 it has almost always left a wave morph in
another basin (sine and triangle sound alike and sit at the two ends of the morph), which Adam
cannot leave; the policy's other parameters are good starts. The target's descriptors are the
proxy's own snapshot (`proxy.yaml` `target`: the mean of the last `summary_frames` analysis frames
of the first `probe_s` seconds, note held) taken from the start of the target's probe, and the
distance is the proxy's error-scaled L1 on z-scores (the ranking of `mrr_weighted`); with the
proxy's error head (`agents.proxy.error_head`), the negative log-likelihood of the target under
each candidate's predicted scales and the head's error model (Laplace or Gaussian, `nll_terms`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from agents.match.curriculum import active_mask
from agents.proxy.error_head import nll_terms, predict_scales
from features.config import FeatureSettings
from features.names import INDEX

if TYPE_CHECKING:
    from agents.proxy import Proxy
    from agents.proxy.error_head import ErrorHead

OSC_SECTION = np.flatnonzero(active_mask(1))  # the parameters the candidates vary
SEARCH_CHUNK_ROWS = 16_384  # proxy predictions per call


def proxy_snapshot(proxy: Proxy, audio: torch.Tensor, sample_rate_hz: int, note_off_s: float | None) -> np.ndarray:
    """The proxy's target descriptors `[P, K]` (its `descriptor_names`, features' units) from probe audio."""
    from features.batch import describe_batch

    target = proxy.meta.get("target", {})
    try:
        features = FeatureSettings(**target["features"])
        probe_s, frames = float(target["probe_s"]), int(target["summary_frames"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"the proxy's 'target' section cannot be used for a snapshot ({exc})") from exc
    if features.sample_rate_hz != sample_rate_hz:
        raise ValueError(
            f"the proxy was trained at {features.sample_rate_hz} Hz, the probe renders at {sample_rate_hz} Hz"
        )
    n = int(round(probe_s * sample_rate_hz))
    if audio.shape[-1] < n or (note_off_s is not None and note_off_s < probe_s):
        raise ValueError(
            f"the probe ({audio.shape[-1]} frames, note off at {note_off_s} s) does not hold its note for the "
            f"proxy's {probe_s} s snapshot"
        )
    columns = [INDEX[name] for name in proxy.descriptor_names]
    with torch.no_grad():
        described = describe_batch(audio[:, :n].float(), sample_rate_hz, features)
    return described[:, -frames:, columns].mean(dim=1).double().numpy()


def proxy_starts(
    proxy: Proxy,
    target_descriptors: np.ndarray,
    patches_0to1: np.ndarray,
    midi_note: float,
    k: int,
    candidates: int,
    rng: np.random.Generator,
    head: ErrorHead | None = None,
) -> np.ndarray:
    """`[P, k, 24]`: per target, the `k` best of `candidates` oscillator settings by the proxy
    (and its error `head`'s per-candidate scales when given)."""
    patches = np.asarray(patches_0to1, dtype=np.float32)
    wanted = np.asarray(target_descriptors, dtype=np.float64)
    if patches.ndim != 2 or wanted.shape != (len(patches), len(proxy.descriptor_names)):
        raise ValueError(
            f"proxy_starts: patches {patches.shape} and target descriptors {wanted.shape} do not pair up "
            f"([P, 24] and [P, {len(proxy.descriptor_names)}])"
        )
    if not 1 <= k <= candidates:
        raise ValueError(f"proxy_starts: need 1 <= k <= candidates, got k={k}, candidates={candidates}")
    std = proxy.out_std.double().numpy()
    scale = proxy.error_scale_z
    weight = 1.0 / (std * (1.0 if scale is None else scale))  # |a - b| / std / scale
    out = np.empty((len(patches), k, patches.shape[1]), dtype=np.float32)
    for row, patch in enumerate(patches):
        trial = np.repeat(patch[None, :], candidates, axis=0)
        trial[:, OSC_SECTION] = rng.random((candidates, len(OSC_SECTION)), dtype=np.float32)
        distance = np.empty(candidates)
        for lo in range(0, candidates, SEARCH_CHUNK_ROWS):
            chunk = torch.from_numpy(trial[lo : lo + SEARCH_CHUNK_ROWS])
            with torch.inference_mode():
                predicted = proxy.predict(chunk, torch.full((len(chunk),), float(midi_note))).double().numpy()
            if head is None:
                distance[lo : lo + len(chunk)] = (np.abs(predicted - wanted[row]) * weight).sum(axis=1)
            else:
                notes = np.full(len(chunk), float(midi_note), dtype=np.float32)
                scales = predict_scales(proxy, head, trial[lo : lo + SEARCH_CHUNK_ROWS], notes)
                nll = nll_terms(head.kind, np.abs(predicted - wanted[row]) / std, scales)
                distance[lo : lo + len(chunk)] = nll.sum(axis=1)
        best = np.argpartition(distance, k - 1)[:k]
        out[row] = trial[best[np.argsort(distance[best])]]
    return out
