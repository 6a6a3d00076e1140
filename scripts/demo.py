"""The main job on the embedded default: `make demo` runs this.

1. The live server (`live_server.py`) with the shipped model `models/default` listens to a held-out
   demo recording (no microphone: the file is streamed block by block through the same code path
   as a device, as fast as possible), drives the internal Serum-lite and sends OSC. It leaves the
   recorded synth (`out/demo/live.wav`), the stats (`out/demo/live_stats.json`) and a PNG of input
   vs synth descriptors (`out/demo/live.png`).
2. Every factory preset is rendered to `out/demo/presets/<name>.wav`, with their spectrograms in
   `out/demo/presets.png`, so a person can hear and see Serum-lite on its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import soundfile as sf
import torch

from synth.presets import factory_presets
from synth.render import render_batch

OUT_DIR = Path("out/demo")
DEMO_INPUT = Path("corpus/demo_test/audio/cello_b.ogg")
DEMO_MODEL = Path("models/default")


def run_live_server(out_dir: Path, audio: Path, model: Path) -> dict:
    """Run the live server on a file, record the synth, return its stats."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = out_dir / "live_stats.json"
    cmd = [
        sys.executable, "live_server.py", "--model", str(model), "--input", str(audio), "--fast",
        "--output", "both", "--output-device", "none", "--osc-port", "0",
        "--record", str(out_dir / "live.wav"), "--stats-json", str(stats), "--plot", str(out_dir / "live.png"),
    ]  # fmt: skip
    print("demo: " + " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)
    return json.loads(stats.read_text())


def render_factory_presets(out_dir: Path, sample_rate_hz: int = 16000, seconds: float = 1.5) -> Path:
    presets = factory_presets()
    names = list(presets)
    params = torch.from_numpy(np.stack([presets[n].params_0to1 for n in names]))
    notes = torch.tensor([float(presets[n].note or 60) for n in names])
    with torch.no_grad():
        audio = render_batch(params, notes, sample_rate_hz=sample_rate_hz, duration_s=seconds, note_off_s=seconds * 0.6)
    (out_dir / "presets").mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, (len(names) + 1) // 2, figsize=(16, 6), sharey=True)
    for ax, name, wave in zip(axes.flat, names, audio.numpy(), strict=False):
        sf.write(out_dir / "presets" / f"{name}.wav", wave, sample_rate_hz, subtype="PCM_16")
        with np.errstate(divide="ignore"):
            ax.specgram(wave, NFFT=512, Fs=sample_rate_hz, noverlap=384, cmap="magma", vmin=-120)
        ax.set_title(name)
        ax.set_ylim(0, 8000)
    fig.suptitle("Serum-lite factory presets (note held for 60% of the render)")
    fig.tight_layout()
    png = out_dir / "presets.png"
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SoundGym demo on the embedded default.")
    parser.add_argument("--out", default=str(OUT_DIR), help="output folder (default: out/demo)")
    parser.add_argument("--input", default=str(DEMO_INPUT), help="audio file the agent listens to")
    parser.add_argument("--model", default=str(DEMO_MODEL), help="model directory")
    args = parser.parse_args(argv)
    out_dir = Path(args.out)
    try:
        stats = run_live_server(out_dir, Path(args.input), Path(args.model))
    except subprocess.CalledProcessError as exc:
        print(f"demo: the live server failed (exit {exc.returncode})", file=sys.stderr)
        return 1
    print(
        f"demo: {stats['blocks']} blocks, {stats['control_ticks']} control ticks, "
        f"block p50/p99 {stats['block_us']['p50']:.0f}/{stats['block_us']['p99']:.0f} us, "
        f"{stats['osc_sent']} OSC messages sent; see {out_dir}/live.wav, live.png, live_stats.json"
    )
    png = render_factory_presets(out_dir)
    print(f"demo: factory presets rendered to {out_dir / 'presets'}/*.wav, spectrograms in {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
