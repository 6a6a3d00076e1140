"""Render the demo corpus: short real-instrument phrases from the General MIDI soundfont.

Input: nothing but the track list below (seeded melodies), `fluidsynth` and the FluidR3 GM
soundfont (Debian: `apt-get install -y --no-install-recommends fluidsynth fluid-soundfont-gm`).
Output: `<out>/audio/<track>.ogg` (mono Ogg Vorbis, 44.1 kHz) for the training corpus and
`<out>_test/audio/<track>.ogg` for the held-out split (different melodies), plus the MIDI files
this script wrote, in a temporary folder unless `--keep-midi DIR`.

Each phrase moves in pitch (a seeded walk over a scale, arch-shaped contour) and in loudness
(velocity per phrase, and an expression-controller swell on sustained instruments), with rests
between phrases, so that a listening agent has something to follow.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from corpus.smf import CC_EXPRESSION, ControlPoint, Note, Song, write_smf
from settings import SettingsError, load_settings

SOUNDFONT_CANDIDATES = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
)
RENDER_RATE_HZ = 44100
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
}


@dataclass(frozen=True)
class TrackSpec:
    name: str
    program: int  # General MIDI program, 0-based
    low: int  # MIDI note range of the melody
    high: int
    tempo_bpm: float
    seed: int
    scale: str = "major"
    tonic: int = 0  # pitch class of the scale's root
    sustained: bool = True  # swell with CC 11 (winds, strings, voice); else dynamics by velocity only
    durations_beats: tuple[float, ...] = (0.5, 1.0, 1.0, 1.5, 2.0)
    legato: float = 0.95  # sounding fraction of each note's slot
    phrases: int = 3
    peak_db: float = -1.0  # the rendered track is normalized to this peak (varies the level across tracks)


TRAIN_TRACKS = (
    TrackSpec("flute", 73, 72, 93, 96, seed=1, scale="major", tonic=2, peak_db=-3.0),
    TrackSpec("cello", 42, 36, 64, 76, seed=2, scale="minor", tonic=9, durations_beats=(0.5, 1.0, 1.5, 2.0)),
    TrackSpec("piano", 0, 48, 86, 112, seed=3, sustained=False, legato=0.9, durations_beats=(0.5, 0.5, 1.0, 1.5)),
    TrackSpec("trumpet", 56, 55, 80, 100, seed=4, scale="major", tonic=10, legato=0.85, peak_db=-2.0),
    TrackSpec("clarinet", 71, 50, 84, 84, seed=5, scale="dorian", tonic=7, peak_db=-4.0),
    TrackSpec(
        "nylon_guitar",
        24,
        40,
        74,
        120,
        seed=6,
        sustained=False,
        scale="minor",
        tonic=4,
        peak_db=-6.0,
        durations_beats=(0.5, 0.5, 1.0, 2.0),
    ),
    TrackSpec(
        "voice_pad",
        52,
        52,
        76,
        72,
        seed=7,
        scale="major",
        tonic=5,
        durations_beats=(1.0, 2.0, 3.0),
        phrases=2,
        peak_db=-5.0,
    ),
    TrackSpec("bass", 32, 28, 52, 104, seed=8, sustained=False, scale="dorian", tonic=2, legato=0.8),
)
TEST_TRACKS = (
    TrackSpec("violin", 40, 55, 88, 90, seed=101, scale="minor", tonic=2, peak_db=-2.0),
    TrackSpec(
        "flute_b", 73, 72, 93, 120, seed=102, scale="dorian", tonic=9, durations_beats=(0.5, 1.0, 1.0), peak_db=-4.0
    ),
    TrackSpec("cello_b", 42, 36, 64, 88, seed=103, scale="major", tonic=0, durations_beats=(0.5, 1.0, 2.0)),
)


def scale_pitches(spec: TrackSpec) -> list[int]:
    steps = SCALES[spec.scale]
    return [p for p in range(spec.low, spec.high + 1) if (p - spec.tonic) % 12 in steps]


def compose(spec: TrackSpec) -> Song:
    """A seeded melody: phrases of an arch-shaped scale walk, each with its own dynamic and swell."""
    rng = np.random.default_rng(spec.seed)
    pitches = scale_pitches(spec)
    song = Song(tempo_bpm=spec.tempo_bpm, program=spec.program)
    t = 0.5
    index = int(rng.integers(len(pitches) // 4, len(pitches) // 2))
    levels = rng.permutation(np.linspace(45, 120, spec.phrases)).astype(int)  # p .. ff, shuffled
    for phrase in range(spec.phrases):
        n_notes = int(rng.integers(6, 11))
        start = t
        for k in range(n_notes):
            rising = k < n_notes // 2
            step = int(rng.choice([-2, -1, 1, 1, 2, 3, -3, 4]))
            step = abs(step) if rising else -abs(step)
            if rng.random() < 0.2:
                step = -step  # the occasional turn against the contour
            index = int(np.clip(index + step, 0, len(pitches) - 1))
            slot = float(rng.choice(spec.durations_beats))
            if k == n_notes - 1:
                slot = max(slot, 2.0)  # a held note closes the phrase
            arch = 1.0 - abs(2.0 * k / max(1, n_notes - 1) - 1.0)  # 0 at the ends, 1 mid-phrase
            velocity = int(np.clip(levels[phrase] * (0.75 + 0.25 * arch) + rng.normal(0, 4), 20, 127))
            song.notes.append(Note(t, slot * spec.legato, pitches[index], velocity))
            t += slot
        if spec.sustained:  # crescendo to the middle of the phrase, diminuendo to its end
            for j in range(9):
                frac = j / 8
                value = int(round(55 + 72 * (1.0 - abs(2.0 * frac - 1.0))))
                song.controls.append(ControlPoint(start + frac * (t - start), CC_EXPRESSION, value))
        t += float(rng.choice([1.0, 1.5, 2.0]))  # rest between phrases
        if phrase == spec.phrases // 2 - 1:
            index = int(np.clip(index + int(rng.choice([-5, 5])), 0, len(pitches) - 1))  # change register
    return song


def find_soundfont(explicit: Path | None) -> Path:
    candidates = (explicit,) if explicit is not None else SOUNDFONT_CANDIDATES
    for path in candidates:
        if path is not None and path.is_file():
            return path
    names = ", ".join(str(p) for p in candidates if p is not None)
    raise FileNotFoundError(f"no General MIDI soundfont at {names}; install it: apt-get install -y fluid-soundfont-gm")


def render_midi(midi_path: Path, wav_path: Path, soundfont: Path) -> None:
    fluidsynth = shutil.which("fluidsynth")
    if fluidsynth is None:
        raise FileNotFoundError("fluidsynth not found on PATH; install it: apt-get install -y fluidsynth")
    cmd = [
        fluidsynth,
        "-ni",
        "-q",
        "-g",
        "0.5",
        "-r",
        str(RENDER_RATE_HZ),
        "-F",
        str(wav_path),
        str(soundfont),
        str(midi_path),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0 or not wav_path.is_file():
        raise RuntimeError(f"fluidsynth failed on {midi_path.name}: {result.stderr.strip()[:200]}")


def finish(audio: np.ndarray, sample_rate_hz: int, peak_db: float) -> np.ndarray:
    """Stereo render -> mono, trailing silence trimmed (0.5 s tail kept, faded), peak-normalized."""
    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    loud = np.flatnonzero(np.abs(mono) > 10 ** (-60 / 20) * max(1e-9, float(np.abs(mono).max())))
    if loud.size == 0:
        raise RuntimeError("fluidsynth rendered silence")
    end = min(mono.size, int(loud[-1]) + sample_rate_hz // 2)
    mono = mono[:end].astype(np.float64)
    fade = min(mono.size, sample_rate_hz // 10)
    mono[-fade:] *= np.linspace(1.0, 0.0, fade)
    mono *= 10 ** (peak_db / 20) / float(np.abs(mono).max())
    return mono.astype(np.float32)


def make_track(spec: TrackSpec, audio_dir: Path, midi_dir: Path, soundfont: Path) -> Path:
    midi_path = midi_dir / f"{spec.name}.mid"
    wav_path = midi_dir / f"{spec.name}.wav"
    write_smf(compose(spec), midi_path)
    render_midi(midi_path, wav_path, soundfont)
    audio, rate = sf.read(wav_path, dtype="float32", always_2d=True)
    out = audio_dir / f"{spec.name}.ogg"
    mono = finish(audio, rate, spec.peak_db)
    with sf.SoundFile(out, "w", rate, 1, format="OGG", subtype="VORBIS") as f:
        for start in range(0, mono.size, 8192):  # libsndfile's Vorbis encoder crashes on one large write
            f.write(mono[start : start + 8192])
    wav_path.unlink()
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m corpus.make_demo",
        description=__doc__.split("\n\n")[0] + " Needs the Debian packages fluidsynth and fluid-soundfont-gm "
        "(apt-get install -y --no-install-recommends fluidsynth fluid-soundfont-gm).",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="training corpus folder (default: settings corpus.default); the test split goes to <out>_test",
    )
    parser.add_argument("--soundfont", type=Path, default=None, help="a GM .sf2 file (default: the Debian FluidR3_GM)")
    parser.add_argument("--only", nargs="*", default=None, help="render only these track names")
    parser.add_argument("--keep-midi", type=Path, default=None, help="keep the written MIDI files in this folder")
    parser.add_argument(
        "--settings", type=Path, default=None, help="settings YAML (default: environment_settings.yaml)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.settings)
        soundfont = find_soundfont(args.soundfont)
    except (SettingsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out if args.out is not None else Path(settings.corpus.default)
    splits = ((out, TRAIN_TRACKS), (out.with_name(out.name + "_test"), TEST_TRACKS))
    known = {s.name for _, specs in splits for s in specs}
    if args.only is not None and (unknown := sorted(set(args.only) - known)):
        print(f"error: unknown track(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        midi_dir = args.keep_midi if args.keep_midi is not None else Path(tmp)
        midi_dir.mkdir(parents=True, exist_ok=True)
        for folder, specs in splits:
            audio_dir = folder / "audio"
            audio_dir.mkdir(parents=True, exist_ok=True)
            for spec in specs:
                if args.only is not None and spec.name not in args.only:
                    continue
                try:
                    path = make_track(spec, audio_dir, midi_dir, soundfont)
                except (RuntimeError, FileNotFoundError, subprocess.TimeoutExpired) as exc:
                    print(f"error: {spec.name}: {exc}", file=sys.stderr)
                    return 1
                info = sf.info(path)
                print(f"{path}  {info.duration:.1f} s  {path.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
