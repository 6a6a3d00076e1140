"""Perceptual descriptors and losses, shared by training, corpus analysis and the live loop."""
