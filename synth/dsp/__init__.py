"""Serum-lite DSP blocks, one module per block.

Batched torch blocks (differentiable) used by `synth.render`: `physical` (normalized -> physical
values), `wavetable` (band-limited mip-mapped tables), `oscillator` (unison wavetable bank),
`envelope` (ADSR), `lfo`, `filter` (frame-domain resonant low-pass). The per-sample numba kernel
shared by the streaming voice and the fast batched path lives in `kernel`. Design constants that
both must agree on live in `constants`.
"""
