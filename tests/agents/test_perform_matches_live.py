"""The evaluation's `perform` plays exactly what the live server plays.

The live server (`server.app.LiveServer`, real extractor, real streaming voice, the shipped model,
a file streamed `--fast`) at the training rate (16 kHz, 512-frame blocks: one block per control
tick) and `agents.imitate.perform` on the same audio, same settings: tick by tick the same input
descriptors, the same descriptors of the synth's own output, the same parameter frame sent and
played (the live output smoothing `server.smoothing_s` and the voice's `synth.param_smoothing_s`
included), the same note and gate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from agents.imitate.perform import AgentController, perform
from features.audio_io import load_audio
from features.names import DESCRIPTOR_NAMES
from server.agent import LiveAgent
from server.app import LiveServer
from server.audio_io import parse_input
from settings import load_settings, with_overrides
from synth.params import N_PARAMS

REPO = Path(__file__).resolve().parents[2]
SR, BLOCK = 16000, 512


@pytest.mark.parametrize(("smoothing_s", "param_smoothing_s"), [(0.05, 0.02), (0.0, 0.02), (0.05, 0.0)])
def test_perform_equals_the_live_server_tick_by_tick(
    tmp_path: Path, smoothing_s: float, param_smoothing_s: float
) -> None:
    audio, _ = load_audio(REPO / "corpus/demo_test/audio/cello_b.ogg", SR)
    wav = tmp_path / "in.wav"
    sf.write(str(wav), audio[: 94 * BLOCK], SR, subtype="FLOAT")  # ~3 s, whole blocks
    model = REPO / "models/default"
    settings = with_overrides(
        load_settings(),
        {
            "server.model": str(model),
            "server.output": "osc",
            "server.smoothing_s": smoothing_s,
            "synth.param_smoothing_s": param_smoothing_s,
            "server.trace_csv": str(tmp_path / "trace.csv"),
            "audio.sample_rate_hz": SR,
            "audio.block_size": BLOCK,
            "audio.output_device": "none",
            "audio.fast": True,
            "osc.listen_port": 0,
            "osc.send_port": 9,  # discard: nobody listens
        },
    )
    server = LiveServer(settings, parse_input(str(wav)))
    server.start()
    server.run()
    server.stop()
    assert server.trace is not None
    trace, names = server.trace.array(), server.trace.names
    k = len(names)
    cols = [DESCRIPTOR_NAMES.index(n) for n in names]

    agent = LiveAgent.from_dir(model, DESCRIPTOR_NAMES)
    played, _ = load_audio(wav, SR)
    perf = perform(played, AgentController(agent), agent.start_preset.copy(), settings)

    assert (len(trace), perf.gates.size) == (94, 94)  # one row per tick
    n = len(trace) - 1  # perform's params are what each block played: the last tick's frame plays no block
    np.testing.assert_array_equal(trace[:, 1 : 1 + k], perf.input_desc[:, cols])
    np.testing.assert_array_equal(trace[:, 1 + k : 1 + 2 * k], perf.output_desc[:, cols])
    # the frame the worker sends after tick t is the one perform's voice plays in block t + 1
    params = trace[:n, 1 + 2 * k : 1 + 2 * k + N_PARAMS]
    np.testing.assert_array_equal(params, perf.params[1 : n + 1])
    np.testing.assert_array_equal(trace[:, -1] > 0, perf.gates)
    assert perf.gates.any() and np.ptp(params[:, agent.controlled], axis=0).max() > 0.05  # it played and moved
