"""`python -m agents.evaluate --task imitate --model models/<name> --audio FILE [--json]`.

Input: a model directory and one or more audio files (or folders of them): recordings the agent
should follow. Each file is played through the agent block by block as the live server does
(`agents.imitate.perform`: streaming descriptors, `server.agent.LiveAgent`, note/gate follower,
the real streaming synth), and through three baselines in the same run: a random policy, the
single best static preset for that file (factory + random presets screened, the best few
performed in full) and per-frame nearest-neighbour lookup in a table of rendered presets.
Output: metrics (printed, or one JSON object with `--json`: task, file, agent {rmse, smoothness,
per_descriptor, ...}, baselines {random, static_best, nearest_neighbour}, ratio_vs_static_best),
and per file under `--out`: the agent's rendered WAV and a PNG of input vs output descriptors.
With several files, `agent`/`baselines` are tick-weighted means and `files` holds each file's object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from agents.imitate.baselines import (
    LookupTable,
    NearestNeighbourController,
    build_table,
    imitation_metrics,
    screen_static,
    static_candidates,
)
from agents.imitate.perform import AgentController, Performance, RandomController, StaticController, perform
from agents.imitate.sound import RenderDescriber
from agents.observation import DescriptorScale
from settings import Settings

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
STATIC_FULL = 4  # static candidates performed in full after screening
_TABLES: dict[tuple, LookupTable] = {}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model directory (default: server.model)")
    parser.add_argument("--audio", nargs="+", default=None, help="audio file(s) or folder(s) to follow")
    parser.add_argument("--out", type=Path, default=None, help="folder for WAVs and PNGs (default runs/evaluate/...)")
    parser.add_argument("--random-presets", type=int, default=48, help="random static candidates (default 48)")
    parser.add_argument("--table-presets", type=int, default=160, help="lookup presets per table note (default 160)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random baselines (default 0)")
    parser.add_argument("--no-baselines", action="store_true", help="evaluate the agent only")
    if "--json" not in parser._option_string_actions:
        parser.add_argument("--json", action="store_true", help="print one JSON object")


def audio_files(items: list[str]) -> list[Path]:
    """Expand files and folders; raises ValueError naming a missing path or an empty folder."""
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise ValueError(f"{path}: no audio files in folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"{path}: audio file not found")
    return files


def evaluate_file(path: Path, live_agent: Any, settings: Settings, args: argparse.Namespace,
                  describer: RenderDescriber | None, out_dir: Path) -> dict[str, Any]:  # fmt: skip
    from features.audio_io import load_audio

    audio, _ = load_audio(path, settings.features.sample_rate_hz)
    meta = live_agent.model.meta
    scale = DescriptorScale.from_dict(meta["normalization"], meta.get("reward_descriptors", meta["descriptor_names"]))
    controlled = tuple(int(i) for i in live_agent.controlled)
    start = live_agent.start_preset
    t0 = time.perf_counter()
    perf = perform(audio, AgentController(live_agent), start, settings)
    result: dict[str, Any] = {
        "task": "imitate",
        "file": str(path),
        "ticks": int(perf.gates.size),
        "tick_s": perf.tick_s,
        "agent": imitation_metrics(perf, scale, controlled, settings.synth.gate_off_db),
    }
    result["agent"]["perform_s"] = round(time.perf_counter() - t0, 2)
    out_dir.mkdir(parents=True, exist_ok=True)
    wav = out_dir / f"{path.stem}_agent.wav"
    _write_wav(wav, perf.audio, settings.features.sample_rate_hz)
    result["wav"] = str(wav)
    if describer is not None:
        result["baselines"] = baselines(perf, audio, scale, controlled, start, live_agent.delta_max, settings,
                                        args, describer)  # fmt: skip
        static = result["baselines"]["static_best"]["rmse"]
        result["ratio_vs_static_best"] = result["agent"]["rmse"] / static if static > 0 else None
    png = out_dir / f"{path.stem}_descriptors.png"
    plot_curves(png, perf, scale, title=f"{path.name}: agent {result['agent']['rmse']:.3f} rmse")
    result["png"] = str(png)
    return result


def baselines(perf: Performance, audio: np.ndarray, scale: DescriptorScale, controlled: tuple[int, ...],
              start: np.ndarray, delta_max: float, settings: Settings, args: argparse.Namespace,
              describer: RenderDescriber) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {}
    rnd = perform(audio, RandomController(controlled, delta_max, args.seed), start, settings)
    out["random"] = imitation_metrics(rnd, scale, controlled, settings.synth.gate_off_db)
    names, candidates = static_candidates(controlled, args.random_presets, args.seed)
    order = screen_static(describer, candidates, perf.input_desc, perf.gates, perf.notes_midi, scale)
    best: dict[str, Any] | None = None
    for i in order[:STATIC_FULL]:
        run = perform(audio, StaticController(candidates[i]), candidates[i], settings)
        metrics = imitation_metrics(run, scale, controlled, settings.synth.gate_off_db) | {"preset": names[i]}
        if best is None or metrics["rmse"] < best["rmse"]:
            best = metrics
    if best is None:
        raise ValueError("static_best: no candidate presets")
    best["candidates"] = len(names)
    out["static_best"] = best
    key = (scale.names, controlled, args.table_presets, args.seed)
    if key not in _TABLES:  # one table per run, shared by the files
        _TABLES[key] = build_table(describer, scale, controlled, args.table_presets, args.seed)
    table = _TABLES[key]
    nn = NearestNeighbourController(table, scale, settings.synth.pitch_confidence_min, settings.synth.gate_off_db)
    out["nearest_neighbour"] = imitation_metrics(
        perform(audio, nn, start, settings), scale, controlled, settings.synth.gate_off_db
    )
    out["nearest_neighbour"]["table_size"] = int(table.params.shape[0])
    return out


def plot_curves(png: Path, perf: Performance, scale: DescriptorScale, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from features.names import INDEX

    t = np.arange(perf.gates.size) * perf.tick_s
    fig, axes = plt.subplots(len(scale.names), 1, figsize=(9, 1.8 * len(scale.names)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], scale.names, strict=True):
        ax.plot(t, perf.input_desc[:, INDEX[name]], label="input (target)", lw=1)
        ax.plot(t, perf.output_desc[:, INDEX[name]], label="synth output", lw=1)
        ax.set_ylabel(name, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)


def _write_wav(path: Path, audio: np.ndarray, sample_rate_hz: int) -> None:
    import soundfile as sf

    sf.write(str(path), np.clip(audio, -1.0, 1.0), sample_rate_hz, subtype="PCM_16")


def _merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Tick-weighted means of the numeric metrics of several files."""
    weights = np.array([r["ticks"] for r in results], dtype=np.float64)

    def mean(getter: Any) -> float:
        return float(np.sum([getter(r) * w for r, w in zip(results, weights, strict=True)]) / weights.sum())

    def block(get: Any) -> dict[str, Any]:
        first = get(results[0])
        merged: dict[str, Any] = {k: mean(lambda r, k=k: get(r)[k]) for k in ("rmse", "smoothness")}
        merged["per_descriptor"] = {
            n: mean(lambda r, n=n: get(r)["per_descriptor"][n]) for n in first["per_descriptor"]
        }
        if "error_share" in first:  # weighted by each file's summed squared error (ticks x rmse^2)
            sse = np.array([w * get(r)["rmse"] ** 2 for r, w in zip(results, weights, strict=True)])
            merged["error_share"] = {
                k: float(sum(get(r)["error_share"][k] * e for r, e in zip(results, sse, strict=True)) / sse.sum())
                if sse.sum() > 0
                else 0.0
                for k in first["error_share"]
            }
        return merged

    merged: dict[str, Any] = {
        "task": "imitate",
        "file": [r["file"] for r in results],
        "ticks": int(weights.sum()),
        "agent": block(lambda r: r["agent"]),
    }
    if "baselines" in results[0]:
        merged["baselines"] = {b: block(lambda r, b=b: r["baselines"][b]) for b in results[0]["baselines"]}
        merged["ratio_vs_static_best"] = merged["agent"]["rmse"] / merged["baselines"]["static_best"]["rmse"]
    merged["files"] = results
    return merged


def run(args: argparse.Namespace, settings: Settings) -> int:
    from agents.policy import ModelError
    from features.names import DESCRIPTOR_NAMES
    from server.agent import LiveAgent

    model_dir = args.model or settings.server.model
    if not args.audio:
        print("error: --audio FILE is required (a recording to follow)", file=sys.stderr)
        return 2
    try:
        files = audio_files(args.audio)
        live_agent = LiveAgent.from_dir(model_dir, DESCRIPTOR_NAMES)
        if live_agent.model.meta.get("task") != "imitate":
            raise ModelError(f"{model_dir}: task is {live_agent.model.meta.get('task')!r}, not 'imitate'")
        describer = None if args.no_baselines else RenderDescriber(settings.synth, settings.features, 0.1)
        out_root = args.out or Path("runs") / "evaluate" / f"imitate_{Path(model_dir).name}"
        t0 = time.perf_counter()
        results = [evaluate_file(f, live_agent, settings, args, describer, out_root) for f in files]
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = results[0] if len(results) == 1 else _merge(results)
    result["model"] = str(model_dir)
    result["wall_s"] = round(time.perf_counter() - t0, 2)
    if args.json:
        print(json.dumps(result))
    else:
        _print_summary(result)
    return 0


def _print_summary(result: dict[str, Any]) -> None:
    print(f"file(s): {result['file']}")
    print(f"agent: rmse {result['agent']['rmse']:.4f}, smoothness {result['agent']['smoothness']:.4f}")
    shares = result["agent"].get("error_share", {})
    if shares:
        print("agent's squared error by kind of tick: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    for name, metrics in result.get("baselines", {}).items():
        print(f"{name}: rmse {metrics['rmse']:.4f}, smoothness {metrics['smoothness']:.4f}")
    if result.get("ratio_vs_static_best") is not None:
        print(f"agent / static_best rmse: {result['ratio_vs_static_best']:.3f}")
