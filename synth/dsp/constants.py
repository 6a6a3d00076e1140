"""Design constants of the Serum-lite voice, shared by the batched (torch) and per-sample (numba) paths.

Input: nothing. Output: numbers. Changing one changes the sound of every preset.
"""

from __future__ import annotations

import math

TABLE_SIZE = 2048  # samples per wavetable period
MAX_HARMONICS = TABLE_SIZE // 2  # harmonics in the top mip level
N_MIP_LEVELS = int(math.log2(MAX_HARMONICS)) + 1  # level l holds MAX_HARMONICS >> l harmonics
N_SHAPES = 4  # sine, saw, square, triangle (synth.params.WAVE_SHAPES)

MAX_UNISON = 7
UNISON_PHASE_STEP = 0.6180339887498949  # voice u starts at frac(u * golden ratio) of a period

ENV_CURVE = 3.0  # decay and release follow (1 - x) ** ENV_CURVE; attack is linear

LFO_PITCH_SEMITONES = 12.0  # lfo_amount = 1 on pitch: +-12 semitones
LFO_FILTER_OCTAVES = 4.0  # lfo_amount = 1 on filter: +-4 octaves on the cutoff
# amplitude: gain 1 - amount * (1 - lfo) / 2, in [1 - amount, 1]

FILTER_MIN_HZ = 20.0  # modulated cutoff clamps to [FILTER_MIN_HZ, FILTER_MAX_NYQUIST * sample_rate / 2]
FILTER_MAX_NYQUIST = 0.9
DC_BLOCK_HZ = 5.0  # one-pole high-pass that keeps the output DC-free

OSC_FADE_NYQUIST = (0.8, 1.0)  # an oscillator fades out as its top frequency goes from 0.8 to 1.0 x Nyquist
