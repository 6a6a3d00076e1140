"""The main job on the embedded default: `make demo` runs this.

Step 1 (always): render every factory preset to `out/demo/presets/<name>.wav` and draw their
spectrograms into `out/demo/presets.png`, so a person can hear and see Serum-lite.
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)
    out_dir = Path(args.out)
    png = render_factory_presets(out_dir)
    print(f"demo: factory presets rendered to {out_dir / 'presets'}/*.wav, spectrograms in {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
