"""Perceptual descriptors and losses, shared by training, corpus analysis and the live loop.

- `features.names`: `DESCRIPTOR_NAMES` (SPEC order), `GROUPS`, `expand`.
- `features.dsp`: the shared analysis plan (window, mel / DCT / chroma matrices, K-weighting).
- `features.batch`: batched, differentiable torch face (`describe_batch`, `log_mel`, `mfcc`, `deltas`).
- `features.stream`: per-block numpy face for the live loop (`StreamingDescriptors`).
- `features.audio_io` / `features.offline`: files of any format -> descriptor tables (`describe_file`).
- `features.loss`: `PerceptualLoss`; `features.normalization`: `DescriptorStats`.
"""
