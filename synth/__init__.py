"""Serum-lite: the 24-parameter synthesizer (table, batched and streaming renderers, presets).

Kept import-light: `import synth` does not import torch; import the submodules you need.
"""
