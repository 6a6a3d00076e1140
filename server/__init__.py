"""The live loop: audio and OSC I/O, the worker, the real-time callbacks."""
