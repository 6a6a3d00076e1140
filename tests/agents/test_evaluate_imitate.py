"""`python -m agents.evaluate --task imitate`: the live-order performance loop, metrics, baselines, outputs.

The model is trained for a few steps on the sound double; the synth output comes from a small
voice double (`FakeVoice`, the documented `StreamingVoice` interface) so that the test does not
depend on the streaming synth's numbers; descriptors, note/gate follower, LiveAgent and the
baselines' render + analyze path are the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import agents.imitate.perform as perform_mod
import agents.imitate.train as imitate_train
import train
from agents.evaluate.__main__ import main as evaluate_main
from agents.imitate.baselines import SCALED_CLIP, imitation_metrics
from agents.imitate.perform import Performance, StaticController, perform
from agents.observation import DescriptorScale
from features.names import INDEX, N_DESCRIPTORS
from settings import load_settings
from synth.params import PARAM_INDEX, default_vector
from tests.agents.test_imitate_doubles import FakeDescriber, write_fake_corpus

SR = 16000


class FakeVoice:
    """A sine voice: gain from master_volume, brightness (a 3rd harmonic) from filter_cutoff."""

    def __init__(self, sample_rate_hz: int, max_block_size: int) -> None:
        self.sr = sample_rate_hz
        self.params = default_vector()
        self.note = 60.0
        self.gate = False
        self.phase = 0.0
        self.log: list[tuple[str, float]] = []

    def set_params(self, x_0to1: np.ndarray) -> None:
        self.params = np.array(x_0to1, dtype=np.float32)

    def note_on(self, midi_note: float) -> None:
        self.note, self.gate = midi_note, True
        self.log.append(("on", midi_note))

    def set_note(self, midi_note: float) -> None:
        self.note = midi_note

    def note_off(self) -> None:
        self.gate = False
        self.log.append(("off", self.note))

    def process(self, out: np.ndarray) -> None:
        f = 440.0 * 2 ** ((self.note - 69) / 12)
        ph = self.phase + 2 * np.pi * f * np.arange(1, out.size + 1) / self.sr
        self.phase = float(ph[-1])
        gain = 0.5 * self.params[PARAM_INDEX["master_volume"]] if self.gate else 0.0
        bright = self.params[PARAM_INDEX["filter_cutoff"]]
        out[:] = gain * (np.sin(ph) + bright * np.sin(3 * ph))


@pytest.fixture(autouse=True)
def doubles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(perform_mod, "default_voice_factory", lambda sr, block, **_: FakeVoice(sr, block))
    monkeypatch.setattr(imitate_train, "make_describer", lambda *a, **k: FakeDescriber())


def _melody(path: Path, seconds: float = 2.0) -> Path:
    """Notes with rests: 0.4 s on, 0.1 s off, rising, varying loudness."""
    t = np.arange(int(seconds * SR)) / SR
    note = 57 + 2 * np.floor(t / 0.5)
    env = ((t % 0.5) < 0.4) * (0.2 + 0.2 * np.floor(t / 0.5) % 2)
    audio = env * np.sin(2 * np.pi * np.cumsum(440 * 2 ** ((note - 69) / 12)) / SR)
    sf.write(str(path), audio.astype(np.float32), SR)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval")
    corpus = write_fake_corpus(root / "corpus", n_tracks=2, n_frames=60)
    out = root / "model"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(imitate_train, "make_describer", lambda *a, **k: FakeDescriber())
        code = train.main(["--corpus", str(corpus), "--out", str(out), "--steps", "60", "--learning-starts", "30",
                           "--batch-size", "8", "--net-arch", "8", "--eval-episodes", "1", "--episode-steps", "20",
                           "--no-progress"])  # fmt: skip
    assert code == 0
    return out


def test_evaluate_json_has_spec_keys_and_writes_wav_and_png(model_dir: Path, tmp_path: Path, capsys) -> None:
    wav = _melody(tmp_path / "melody.wav")
    code = evaluate_main(["--task", "imitate", "--model", str(model_dir), "--audio", str(wav), "--json",
                          "--out", str(tmp_path / "out"), "--random-presets", "3", "--table-presets", "6"])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "imitate" and result["file"] == str(wav)
    for block in [result["agent"], *result["baselines"].values()]:
        assert {"rmse", "smoothness", "per_descriptor"} <= set(block)
        assert 0.0 <= block["rmse"] < 2.0
        assert set(block["per_descriptor"]) == {"loudness_db", "centroid", "rolloff", "flatness"}
        assert set(block["error_share"]) == {"rest", "onset", "before_gate", "release", "gate_open"}
        assert sum(block["error_share"].values()) == pytest.approx(1.0)
    assert set(result["baselines"]) == {"random", "static_best", "nearest_neighbour"}
    assert result["baselines"]["static_best"]["smoothness"] == 0.0
    assert result["baselines"]["random"]["smoothness"] > 0.0
    assert result["ratio_vs_static_best"] == pytest.approx(
        result["agent"]["rmse"] / result["baselines"]["static_best"]["rmse"]
    )
    out_audio, sr = sf.read(result["wav"])
    assert sr == SR and abs(len(out_audio) - 2.0 * SR) <= 512
    assert np.abs(out_audio).max() > 0.01  # the voice sounded: the gate followed the melody
    assert Path(result["png"]).stat().st_size > 1000


def test_bad_input_one_line_errors(model_dir: Path, tmp_path: Path, capsys) -> None:
    assert evaluate_main(["--model", str(model_dir), "--audio", str(tmp_path / "missing.wav")]) == 2
    assert "missing.wav" in capsys.readouterr().err
    assert evaluate_main(["--model", str(tmp_path / "nomodel"), "--audio", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.yaml").write_text("task: [unclosed")
    wav = _melody(tmp_path / "m.wav", 0.5)
    assert evaluate_main(["--model", str(broken), "--audio", str(wav)]) == 2
    assert "model.yaml" in capsys.readouterr().err


def test_perform_follows_gate_and_renders_with_previous_tick_params() -> None:
    """Static preset: the output is silent during rests, sounds during notes, params constant."""
    settings = load_settings()
    t = np.arange(SR) / SR
    audio = (((t % 0.5) < 0.3) * 0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    preset = default_vector()
    voices: list[FakeVoice] = []

    def factory(sr: int, block: int) -> FakeVoice:
        voices.append(FakeVoice(sr, block))
        return voices[-1]

    perf = perform(audio, StaticController(preset), preset, settings, voice_factory=factory)
    assert perf.gates.size == SR // 512
    assert [kind for kind, _ in voices[0].log][:3] == ["on", "off", "on"]
    assert perf.notes_midi[perf.gates][0] == pytest.approx(64.0)  # 330 Hz -> E4
    assert np.all(perf.params == preset)
    # the output block after a note-on tick sounds; the first tick (gate still closed) is silent
    first_on = int(np.argmax(perf.gates))
    assert np.abs(perf.audio[: (first_on + 1) * 512]).max() == 0.0
    assert np.abs(perf.audio[(first_on + 1) * 512 : (first_on + 3) * 512]).max() > 0.0


def test_metrics_are_rmse_of_scaled_descriptors_and_mean_abs_delta() -> None:
    scale = DescriptorScale(("loudness_db", "centroid"), np.array([-60.0, 0.0]), np.array([0.0, 1000.0]))
    inp = np.zeros((4, N_DESCRIPTORS), dtype=np.float32)
    out = np.zeros_like(inp)
    inp[:, INDEX["loudness_db"]] = -30.0  # 0.5 scaled
    out[:, INDEX["loudness_db"]] = -15.0  # 0.75 scaled -> error 0.25
    inp[:, INDEX["centroid"]] = 500.0
    out[:, INDEX["centroid"]] = 500.0
    params = np.zeros((4, 24), dtype=np.float32)
    params[:, 0] = [0.0, 0.1, 0.1, 0.4]
    perf = Performance(0.032, inp, out, params, np.zeros(4), np.array([True, True, False, False]), np.zeros(4))
    m = imitation_metrics(perf, scale, (0, 1), silence_db=-55.0)
    assert m["per_descriptor"]["loudness_db"] == pytest.approx(0.25)
    assert m["per_descriptor"]["centroid"] == pytest.approx(0.0)
    assert m["rmse"] == pytest.approx(np.sqrt(0.25**2 / 2))
    assert m["smoothness"] == pytest.approx((0.1 + 0.0 + 0.3) / 3 / 2)
    assert m["silent_ticks"] == 0
    # both silent on the last tick: its (undefined) centroid mismatch does not count, loudness does
    inp[3, INDEX["loudness_db"]], out[3, INDEX["loudness_db"]] = -58.0, -60.0
    out[3, INDEX["centroid"]] = 1000.0
    m2 = imitation_metrics(perf, scale, (0, 1), silence_db=-55.0)
    assert m2["silent_ticks"] == 1 and m2["per_descriptor"]["centroid"] == pytest.approx(0.0)
    assert m2["per_descriptor"]["loudness_db"] == pytest.approx(np.sqrt((3 * 0.25**2 + (2 / 60) ** 2) / 4))
    m3 = imitation_metrics(perf, scale, (0, 1), silence_db=-90.0)  # not silent: the centroid counts
    assert m3["per_descriptor"]["centroid"] == pytest.approx(np.sqrt(0.5**2 / 4))


def test_error_share_splits_the_squared_error_by_kind_of_tick() -> None:
    scale = DescriptorScale(("loudness_db", "centroid"), np.array([-60.0, 0.0]), np.array([0.0, 1000.0]))
    # ticks: rest, before the gate (input -52 dB, synth silent), onset, open, open, release (synth tail)
    inp_db = [-80.0, -52.0, -40.0, -30.0, -30.0, -70.0]
    out_db = [-90.0, -90.0, -90.0, -30.0, -36.0, -50.0]
    gates = np.array([False, False, True, True, True, False])
    inp = np.zeros((6, N_DESCRIPTORS), dtype=np.float32)
    out = np.zeros_like(inp)
    inp[:, INDEX["loudness_db"]], out[:, INDEX["loudness_db"]] = inp_db, out_db
    perf = Performance(0.032, inp, out, np.zeros((6, 24), np.float32), np.zeros(6), gates, np.zeros(6))
    m = imitation_metrics(perf, scale, (0,), silence_db=-55.0)
    scaled_in, scaled_out = (np.clip((np.array(db) + 60) / 60, *SCALED_CLIP) for db in (inp_db, out_db))
    sq = (scaled_out - scaled_in) ** 2
    want = {"rest": sq[0], "before_gate": sq[1], "onset": sq[2], "gate_open": sq[3] + sq[4], "release": sq[5]}
    assert set(m["error_share"]) == set(want)
    for name, value in want.items():
        assert m["error_share"][name] == pytest.approx(value / sq.sum()), name
    assert sum(m["error_share"].values()) == pytest.approx(1.0)


def test_merged_error_share_weights_files_by_their_squared_error() -> None:
    from agents.evaluate.imitate import _merge

    def result(ticks: int, rmse: float, share: dict[str, float]) -> dict:
        agent = {"rmse": rmse, "smoothness": 0.0, "per_descriptor": {"centroid": rmse}, "error_share": share}
        return {"file": f"{ticks}.wav", "ticks": ticks, "agent": agent}

    merged = _merge([result(10, 0.1, {"rest": 1.0, "onset": 0.0}), result(30, 0.2, {"rest": 0.0, "onset": 1.0})])
    sse = (10 * 0.1**2, 30 * 0.2**2)
    assert merged["agent"]["error_share"]["rest"] == pytest.approx(sse[0] / sum(sse))
    assert merged["agent"]["error_share"]["onset"] == pytest.approx(sse[1] / sum(sse))


def test_text_summary_names_the_error_shares(capsys: pytest.CaptureFixture) -> None:
    from agents.evaluate.imitate import _print_summary

    shares = {"rest": 0.1, "onset": 0.2, "before_gate": 0.1, "release": 0.05, "gate_open": 0.55}
    static = {"rmse": 0.2, "smoothness": 0.0}
    _print_summary({"file": "a.wav", "agent": {"rmse": 0.1, "smoothness": 0.02, "error_share": shares},
                    "baselines": {"static_best": static}, "ratio_vs_static_best": 0.5})  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert "agent: rmse 0.1000, smoothness 0.0200" in out
    want = "agent's squared error by kind of tick: rest 10%, onset 20%, before_gate 10%, release 5%, gate_open 55%"
    assert want in out
    assert out[-1] == "agent / static_best rmse: 0.500"


@pytest.mark.parametrize("hold", [True, False])
def test_perform_holds_the_parameters_in_rests(hold: bool) -> None:
    """`synth.hold_while_gate_closed`: a controller that always moves moves the sound only while the gate
    is open; the parameters that play after a rest are those the last note ended with."""
    from agents.imitate.perform import RandomController
    from settings import with_overrides

    settings = with_overrides(load_settings(), {"synth.hold_while_gate_closed": hold, "server.smoothing_s": 0.0})
    t = np.arange(SR) / SR
    audio = (((t % 0.5) < 0.3) * 0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    preset = default_vector()
    controlled = (PARAM_INDEX["filter_cutoff"], PARAM_INDEX["master_volume"])
    perf = perform(audio, RandomController(controlled, 0.05, seed=3), preset, settings, voice_factory=FakeVoice)
    moves = np.abs(np.diff(perf.params, axis=0)).sum(axis=1)  # move k: chosen at tick k, plays from k + 1
    closed = ~perf.gates[:-1]
    assert closed.sum() >= 4 and np.all(moves[~closed] > 0)
    assert np.all(moves[closed] == 0) if hold else np.all(moves[closed] > 0)


def test_perform_plays_the_live_servers_smoothed_frame() -> None:
    """The voice plays what the live server would send and play: the controller's vectors through the
    live `ControlState`'s one-pole smoothing (`server.smoothing_s`); the controller observes its own vector."""
    from agents.imitate.perform import RandomController
    from server.control import ControlState, smoothing_coefficient
    from settings import with_overrides

    settings = with_overrides(load_settings(), {"server.smoothing_s": 0.05, "synth.hold_while_gate_closed": True})
    t = np.arange(SR) / SR
    audio = (((t % 0.5) < 0.3) * 0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    preset = default_vector()
    controlled = (PARAM_INDEX["filter_cutoff"], PARAM_INDEX["master_volume"])
    chosen: list[np.ndarray] = []

    class Logged(RandomController):
        def step(self, agent_all: np.ndarray, target_all: np.ndarray, params_0to1: np.ndarray) -> None:
            super().step(agent_all, target_all, params_0to1)
            chosen.append(params_0to1.copy())

    perf = perform(audio, Logged(controlled, 0.05, seed=3), preset, settings, voice_factory=FakeVoice)
    live = ControlState(preset, smoothing_coef=smoothing_coefficient(0.05, perf.tick_s))
    expected, vector = [live.output_0to1.copy()], preset.copy()
    for tick in range(len(chosen) - 1):
        if perf.gates[tick]:  # else a rest: the controller's move is not applied, its vector is held
            vector = chosen[tick]
        live.params_0to1[:] = vector
        live.update_output()
        expected.append(live.output_0to1.copy())
    np.testing.assert_array_equal(perf.params, np.array(expected))
    moves = np.abs(np.diff(perf.params[:, list(controlled)], axis=0)).sum(axis=1)
    raw = np.abs(np.diff(np.array(chosen)[:, list(controlled)], axis=0)).sum(axis=1)
    assert moves.mean() < 0.8 * raw.mean()  # smoother than what the controller chose


def test_corpus_start_preset_is_the_corpus_best_static_sound() -> None:
    from agents.imitate.baselines import corpus_start_preset
    from agents.imitate.targets import random_presets
    from synth.config import SynthSettings

    describer = FakeDescriber()
    controlled = tuple(PARAM_INDEX[n] for n in ("master_volume", "filter_cutoff", "noise_level"))
    sound = default_vector()
    sound[list(controlled)] = (0.3, 0.3, 0.1)  # a quiet, dark sound (the table default plays at 0.7 volume)
    frames = describer.describe(np.repeat(sound[None], 60, axis=0), np.full(60, 60.0), np.ones(60, dtype=bool))
    frames[:5] = describer.describe(sound[None], np.array([60.0]), np.zeros(1, dtype=bool))  # a rest first
    names = ("loudness_db", "centroid", "flatness")
    idx = [INDEX[n] for n in names]
    scale = DescriptorScale(names, frames[5:, idx].min(0) - 20.0, frames[5:, idx].max(0) + 20.0)
    start = corpus_start_preset(describer, (frames, frames[:30]), scale, controlled, SynthSettings(), 0.032, 64, 0)

    others = np.setdiff1d(np.arange(default_vector().size), controlled)
    np.testing.assert_array_equal(start[others], default_vector()[others])

    def err(p: np.ndarray) -> float:
        d = describer.describe(p[None], np.array([60.0]), np.ones(1, dtype=bool))[0, idx]
        return float(np.mean((scale.to_0to1(d) - scale.to_0to1(frames[10, idx])) ** 2))

    candidates = random_presets(np.random.default_rng(0), 64, default_vector(), controlled)
    assert err(start) == pytest.approx(min(err(c) for c in candidates))
    assert err(start) < err(default_vector()) / 10
