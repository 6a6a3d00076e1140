"""Parameter jumps do not click in the streaming voice.

Click threshold: after a jump of one parameter from 0 to 1 (or 1 to 0), the high-frequency energy
(above 3 kHz, 256-frame Hann frames at 48 kHz, hop 64) over the next 100 ms never exceeds by more
than 3 dB the most that the stationary sound produces anywhere along the path (nine fixed values
between the two settings), nor -60 dB of the signal power when that is higher. A click is
broadband, so it shows as exactly such a burst; legitimate timbre changes stay inside the path's
range. Without smoothing the same measure flags an amp_sustain jump (~+7 dB), so it can fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from synth.params import CONTINUOUS_INDICES, PARAM_INDEX, PARAM_NAMES, default_vector
from synth.stream import StreamingVoice

RATE = 48000
BLOCK = 512
FRAME = 256
HOP = 64
THRESHOLD_DB = 3.0
JUMP_BLOCK = int(0.3 * RATE / BLOCK)


def base() -> np.ndarray:
    x = default_vector()
    values = dict(
        osc1_wave=0.3,
        osc1_level=0.7,
        osc2_level=0.3,
        unison_voices=2 / 6,
        unison_detune=0.3,
        filter_cutoff=0.6,
        filter_resonance=0.4,
        amp_attack=0.0,
        amp_sustain=1.0,
        mod_sustain=1.0,
        noise_level=0.0,
        master_volume=0.6,
    )
    for name, value in values.items():
        x[PARAM_INDEX[name]] = value
    return x


def _render(x0: np.ndarray, x1: np.ndarray | None, seconds: float, smoothing_s: float) -> np.ndarray:
    voice = StreamingVoice(RATE, BLOCK, param_smoothing_s=smoothing_s)
    voice.set_params(x0)
    voice.note_on(45)
    block = np.empty(BLOCK, dtype=np.float32)
    out = []
    for b in range(int(seconds * RATE / BLOCK)):
        if x1 is not None and b == JUMP_BLOCK:
            voice.set_params(x1)
        voice.process(block)
        out.append(block.copy())
    return np.concatenate(out)


def _hf_energy(y: np.ndarray) -> np.ndarray:
    window = np.hanning(FRAME)
    high = np.fft.rfftfreq(FRAME, 1 / RATE) >= 3000.0
    starts = np.arange(0, y.size - FRAME, HOP)
    frames = np.stack([y[s : s + FRAME] * window for s in starts])
    return (np.abs(np.fft.rfft(frames, axis=1)) ** 2)[:, high].sum(1)


def click_db(x0: np.ndarray, x1: np.ndarray, smoothing_s: float) -> float:
    y = _render(x0, x1, 0.6, smoothing_s)
    jump = JUMP_BLOCK * BLOCK
    burst = _hf_energy(y[jump - 2 * HOP : jump + int(0.1 * RATE)]).max()
    path = max(_hf_energy(_render(x0 + (x1 - x0) * k / 8, None, 0.25, 0.0)[int(0.1 * RATE) :]).max() for k in range(9))
    power = np.mean(y.astype(np.float64) ** 2)
    floor = 1e-6 * power * np.sum(np.hanning(FRAME) ** 2) * FRAME / 2  # -60 dB of the frame power, in HF units
    return float(10 * np.log10(burst / max(path, floor)))


def _jump(index: int, start: float) -> tuple[np.ndarray, np.ndarray]:
    x0, x1 = base(), base()
    x0[index], x1[index] = start, 1.0 - start
    return x0, x1


@pytest.mark.parametrize("start", [0.0, 1.0])
def test_full_range_jumps_of_every_continuous_parameter_stay_below_the_click_threshold(start: float) -> None:
    worst = {PARAM_NAMES[i]: click_db(*_jump(i, start), smoothing_s=0.02) for i in CONTINUOUS_INDICES}
    loud = {name: round(db, 1) for name, db in worst.items() if db > THRESHOLD_DB}
    assert not loud, f"clicks (dB over the path's HF): {loud}"


def test_a_jump_of_every_parameter_at_once_stays_below_the_threshold() -> None:
    x0 = base()
    assert click_db(x0, 1.0 - x0, smoothing_s=0.02) < THRESHOLD_DB


def test_the_measure_flags_an_unsmoothed_sustain_jump() -> None:
    assert click_db(*_jump(PARAM_INDEX["amp_sustain"], 0.0), smoothing_s=0.0) > THRESHOLD_DB
