"""Train the wave net (`agents.match.wave_net`) on freshly rendered random targets.

Input: the settings' probe (`synth` and `match` sections: sample rate, probe length, note off,
note, noise seed), a row count and seeds. Output: a wave net folder (`wave_net.safetensors`,
`wave_net.yaml`) and one JSON line of facts on stdout.

Data: `rows` random presets (`agents.match.curriculum.random_presets`, from the training seed
stream, so the validation and held-out preset sets are never drawn), rendered as the agent's
probe and reduced to the net's log spectrum, plus `validation_rows` from another stream for the
per-epoch report. Each epoch gives every row a random stage from `stages` (the context: the held
parameters and the mask). Loss: cross-entropy over the wave bins (label smoothing 0.05) plus the
L1 of the auxiliary level regression; AdamW with a one-cycle learning rate.

    python -m agents.match.wave_net_train --out models/match_dagger/wave_net --rows 1200000 --epochs 16
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.match.curriculum import STREAM_TRAIN, STREAM_VALIDATION, random_presets
from agents.match.wave_net import (
    AUX_COLUMNS,
    WAVE_COLUMNS,
    SpectrumSettings,
    WaveNet,
    context_inputs,
    log_spectrum,
    save_wave_net,
    spectrum_inputs,
)

RENDER_CHUNK_ROWS = 4096
DATA_SALT = 17  # third SeedSequence entry: wave-net data, not the policy's training targets


@dataclass(frozen=True)
class WaveNetTraining:
    rows: int = 400_000
    validation_rows: int = 20_000
    epochs: int = 12
    bins: int = 24
    hidden: tuple[int, ...] = (512, 512, 256)
    batch_size: int = 512
    max_lr: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    stages: tuple[int, ...] = (1, 2, 3)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rows < self.batch_size or self.validation_rows < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"wave net training: need rows >= batch_size >= 1, validation_rows >= 1, epochs >= 1; got "
                f"rows={self.rows}, batch_size={self.batch_size}, validation_rows={self.validation_rows}, "
                f"epochs={self.epochs}"
            )


def render_spectra(
    renderer: Any, params_0to1: np.ndarray, spectrum: SpectrumSettings, progress: bool = False
) -> np.ndarray:
    """Probe renders of `params [N, 24]` -> log spectra `[N, bins]` float16 (rendered in chunks)."""
    out = np.empty((len(params_0to1), spectrum.n_bins), dtype=np.float16)
    for lo in range(0, len(params_0to1), RENDER_CHUNK_ROWS):
        with torch.no_grad():
            audio = renderer(torch.from_numpy(params_0to1[lo : lo + RENDER_CHUNK_ROWS]))
        out[lo : lo + len(audio)] = log_spectrum(audio, spectrum)
        if progress:
            print(f"\rrendered {lo + len(audio)}/{len(params_0to1)}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return out


def wave_labels(params_0to1: np.ndarray, bins: int) -> np.ndarray:
    """`[N, 2]` int64 bin of osc1_wave and osc2_wave."""
    return np.minimum((params_0to1[:, list(WAVE_COLUMNS)] * bins).astype(np.int64), bins - 1)


def train_wave_net(
    spectra: np.ndarray,
    params_0to1: np.ndarray,
    val_spectra: np.ndarray,
    val_params_0to1: np.ndarray,
    config: WaveNetTraining,
    *,
    log: Any = None,
) -> tuple[WaveNet, dict[str, Any]]:
    """Fit a `WaveNet` on rendered spectra; returns it and the facts for `wave_net.yaml`."""
    start = time.monotonic()
    rng = np.random.default_rng([config.seed, DATA_SALT, 1])
    torch.manual_seed(config.seed)
    x = spectrum_inputs(spectra.astype(np.float32))
    x_val = torch.from_numpy(spectrum_inputs(val_spectra.astype(np.float32)))
    net = WaveNet(x.shape[1], config.hidden, config.bins)
    net.in_mean.copy_(torch.from_numpy(x.mean(axis=0)))
    net.in_std.copy_(torch.from_numpy(x.std(axis=0) + 1e-3))
    stages = np.asarray(config.stages)
    val_context = torch.from_numpy(context_inputs(val_params_0to1, rng.choice(stages, len(val_params_0to1))))
    y, y_val = torch.from_numpy(wave_labels(params_0to1, config.bins)), wave_labels(val_params_0to1, config.bins)
    aux, x_t = torch.from_numpy(params_0to1[:, list(AUX_COLUMNS)].astype(np.float32)), torch.from_numpy(x)
    per_epoch = len(x) // config.batch_size
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.max_lr / 10, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.max_lr, total_steps=config.epochs * per_epoch)
    history: list[dict[str, float]] = []
    for epoch in range(config.epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        context = torch.from_numpy(context_inputs(params_0to1, rng.choice(stages, len(x))))
        for i in range(per_epoch):
            rows = order[i * config.batch_size : (i + 1) * config.batch_size]
            logits, levels = net(x_t[rows], context[rows])
            loss = (
                nn.functional.cross_entropy(
                    logits.reshape(-1, config.bins), y[rows].reshape(-1), label_smoothing=config.label_smoothing
                )
                + (levels - aux[rows]).abs().mean()
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        history.append(_validate(net, x_val, val_context, y_val, val_params_0to1, epoch, time.monotonic() - start))
        if log is not None:
            print(json.dumps(history[-1]), file=log, flush=True)
    net.eval()
    facts = {
        "rows": int(len(x)),
        "validation_rows": int(len(x_val)),
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "max_lr": config.max_lr,
        "seed": config.seed,
        **{k: v for k, v in history[-1].items() if k not in ("epoch", "s")},
        "minutes": round((time.monotonic() - start) / 60.0, 2),
    }
    return net, facts


def _validate(
    net: WaveNet, x: torch.Tensor, context: torch.Tensor, y: np.ndarray, params: np.ndarray, epoch: int, s: float
) -> dict[str, float]:
    """Bin accuracy and the share within 1/6 of the true morph (half a wave segment), per oscillator."""
    net.eval()
    with torch.inference_mode():
        logits = net(x, context)[0].numpy()
    guess = logits.argmax(axis=-1)
    error = np.abs(net.bin_centres()[guess] - params[:, list(WAVE_COLUMNS)])
    near = (error < 1.0 / 6.0).mean(axis=0)
    return {
        "epoch": epoch,
        "bin_accuracy": round(float((guess == y).mean()), 4),
        "osc1_within_sixth": round(float(near[0]), 4),
        "osc2_within_sixth": round(float(near[1]), 4),
        "s": round(s, 1),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agents.match.wave_net_train", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="wave net folder to write")
    parser.add_argument("--settings", default=None, help="environment_settings.yaml (default: the repository's)")
    defaults = WaveNetTraining()
    parser.add_argument("--rows", type=int, default=defaults.rows, help="training renders")
    parser.add_argument("--validation-rows", type=int, default=defaults.validation_rows)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--bins", type=int, default=defaults.bins, help="bins per wave morph")
    parser.add_argument("--hidden", type=int, nargs="+", default=list(defaults.hidden))
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--stages", type=int, nargs="+", default=list(defaults.stages))
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from agents.match.probe import ProbeRenderer
    from settings import load_settings

    try:
        config = WaveNetTraining(
            rows=args.rows,
            validation_rows=args.validation_rows,
            epochs=args.epochs,
            bins=args.bins,
            hidden=tuple(args.hidden),
            batch_size=args.batch_size,
            stages=tuple(args.stages),
            seed=args.seed,
        )
        WaveNet(2, config.hidden, config.bins)  # checks bins and hidden sizes before any render
        if any(s not in (1, 2, 3, 4, 5) for s in config.stages):
            raise ValueError(f"--stages must be curriculum stages 1..5, got {list(config.stages)}")
        settings = load_settings(args.settings)
        renderer = ProbeRenderer(settings)
        end_s = renderer.note_off_s if renderer.note_off_s is not None else renderer.duration_s
        spectrum = SpectrumSettings(sample_rate_hz=renderer.sample_rate_hz, end_s=min(0.35, end_s))
    except ValueError as exc:
        print(f"wave_net_train: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    params = random_presets(np.random.default_rng([config.seed, STREAM_TRAIN, DATA_SALT]), config.rows)
    val = random_presets(np.random.default_rng([config.seed, STREAM_VALIDATION, DATA_SALT]), config.validation_rows)
    spectra = render_spectra(renderer, params, spectrum, progress=sys.stderr.isatty())
    val_spectra = render_spectra(renderer, val, spectrum)
    net, facts = train_wave_net(spectra, params, val_spectra, val, config, log=sys.stderr)
    save_wave_net(args.out, net, spectrum, config.stages, facts)
    print(json.dumps({"out": args.out, **facts}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
