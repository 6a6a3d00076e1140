"""Training infrastructure shared by both tasks: algorithm factory, callbacks, checkpoints, export."""
