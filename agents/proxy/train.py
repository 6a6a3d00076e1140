"""`python -m agents.proxy.train`: fit the neural proxy on a rendered params -> descriptors table.

Input: one or more table folders (`python -m synth.lookup build DIR --notes 36 84`, all 24
parameters sampled), an optional held-out table for the final evaluation, training options.
Output: the proxy folder (default `models/proxy/`): `proxy.safetensors`, `proxy.yaml` (with the
training facts and held-out metrics) and `report/eval.json`. Loss: L1 on z-normalized descriptors
(normalization = the training table's per-descriptor mean and std). AdamW, cosine learning rate,
the best validation epoch is kept. Stops after `--epochs` or `--max-minutes`, whichever is first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from agents.proxy.evaluate import evaluate, laplace_scales
from agents.proxy.model import CHROMA_HEADS, Proxy, ProxyError
from features.names import DESCRIPTOR_NAMES
from settings import SettingsError, load_settings
from synth.lookup_store import TableError, load_table

TARGET_KEYS = ("sample_rate_hz", "probe_s", "summary_frames")


def load_tables(folders: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Rows of every table, and the target they share (probe, summary frames, feature settings)."""
    parts, targets = [], []
    for folder in folders:
        manifest, params, notes, descriptors = load_table(folder)
        parts.append((params, notes, descriptors))
        targets.append(table_target(manifest))
    if any(t != targets[0] for t in targets[1:]):
        raise TableError(f"{', '.join(map(str, folders))}: tables render different targets (probe or features)")
    params, notes, descriptors = (np.concatenate(p) for p in zip(*parts, strict=True))
    if not np.all(np.isfinite(descriptors)):
        raise TableError(f"{', '.join(map(str, folders))}: descriptors hold NaN/Inf values")
    return params, notes, descriptors, targets[0]


def table_target(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a table's descriptors are: the probe render and how its frames are summarized."""
    plan = manifest["plan"]
    return {k: plan[k] for k in TARGET_KEYS} | {"features": manifest["features"]}


def snapshot_times_s(target: dict[str, Any]) -> tuple[float, ...]:
    """Centre times (s, >= 0) of the analysis frames a table's descriptors average (`table_target`)."""
    from features.batch import frame_times_s
    from features.config import FeatureSettings

    rate = int(target["sample_rate_hz"])
    times = frame_times_s(int(round(float(target["probe_s"]) * rate)), rate, FeatureSettings(**target["features"]))
    frames = int(target["summary_frames"])
    return tuple(round(max(0.0, float(t)), 6) for t in (times[-frames:] if frames else times))


def widened_state(init: Proxy, n_inputs: int) -> dict[str, torch.Tensor]:
    """init's weights for a proxy with n_inputs >= init's inputs: the extra input columns of the first
    layer are zero, so the widened proxy computes what init did."""
    state = {k: v.clone() for k, v in init.state_dict().items()}
    first = state["net.0.weight"]
    if n_inputs > first.shape[1]:
        state["net.0.weight"] = torch.cat([first, first.new_zeros(first.shape[0], n_inputs - first.shape[1])], dim=1)
    return state


def train(
    params: np.ndarray,
    notes: np.ndarray,
    descriptors: np.ndarray,
    *,
    hidden: tuple[int, ...],
    epochs: int,
    batch_size: int,
    lr: float,
    max_minutes: float,
    val_fraction: float,
    seed: int,
    progress: bool = True,
    init: Proxy | None = None,
    chroma_head: str = "rotate",
    log_levels: bool = False,
    envelope_times_s: tuple[float, ...] = (),
) -> tuple[Proxy, dict[str, Any]]:
    """Fit a proxy; returns it (best validation epoch) and the training facts.

    `init`: continue from this proxy (its layer sizes, chroma head and output normalization are kept;
    with `log_levels` or `envelope_times_s` on an init without them, the new inputs start with zero
    weights: the same function, which training then refines). `envelope_times_s`: feed the envelopes
    at these times (`agents.proxy.encoding.envelope_inputs`; the CLI's `--envelope-inputs` uses the
    snapshot frames' centres, `snapshot_times_s`).
    The proxy's `meta["error_scale_z"]` is fitted on the validation split (`agents.proxy.calibrate`
    refits it on a separate table, e.g. when an `init` was trained with another split).
    """
    if init is not None and init.envelope_times_s and envelope_times_s and init.envelope_times_s != envelope_times_s:
        raise ValueError(f"--init has envelope inputs at {init.envelope_times_s} s, not {envelope_times_s}")
    torch.manual_seed(seed)
    n = params.shape[0]
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * val_fraction)))
    val, tr = order[:n_val], order[n_val:]
    if tr.size < batch_size:
        raise ValueError(f"{tr.size} training rows is fewer than one batch of {batch_size}")
    if init is not None:
        mean, std = init.out_mean.numpy().astype(np.float64), init.out_std.numpy().astype(np.float64)
    else:
        mean = descriptors[tr].mean(axis=0)
        std = descriptors[tr].std(axis=0) + 1e-6
    x = torch.from_numpy(np.ascontiguousarray(params, dtype=np.float32))
    k = torch.from_numpy(np.ascontiguousarray(notes, dtype=np.float32))
    z = descriptors.astype(np.float32)  # normalized in place: a float64 temporary of a 17M-row table is 5 GB
    z -= mean.astype(np.float32)
    z /= std.astype(np.float32)
    y = torch.from_numpy(z)
    proxy = Proxy(
        DESCRIPTOR_NAMES,
        hidden if init is None else init.hidden,
        torch.from_numpy(mean),
        torch.from_numpy(std),
        chroma_head=chroma_head if init is None else init.chroma_head,
        log_levels=log_levels or (init is not None and init.log_levels),
        envelope_times_s=envelope_times_s or (init.envelope_times_s if init is not None else ()),
    )
    if init is not None:
        proxy.load_state_dict(widened_state(init, proxy.n_inputs))
    opt = torch.optim.AdamW(proxy.parameters(), lr=lr, weight_decay=1e-5)
    steps_per_epoch = tr.size // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.05)
    val_t = torch.from_numpy(val)
    best = (float("inf"), -1, {k_: v.clone() for k_, v in proxy.state_dict().items()})
    history: list[dict[str, float]] = []
    start = time.monotonic()
    for epoch in range(epochs):
        proxy.train()
        perm = torch.from_numpy(tr)[torch.randperm(tr.size)]
        total = 0.0
        for b in tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            loss = (proxy.predict_normalized(x[idx], k[idx]) - y[idx]).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        proxy.eval()
        with torch.no_grad():
            val_loss = float((proxy.predict_normalized(x[val_t], k[val_t]) - y[val_t]).abs().mean())
        history.append(
            {"epoch": epoch + 1, "train_l1": round(total / steps_per_epoch, 5), "val_l1": round(val_loss, 5)}
        )
        if progress:
            print(f"epoch {epoch + 1}: train L1 {total / steps_per_epoch:.4f}, val L1 {val_loss:.4f}", flush=True)
        if val_loss < best[0]:
            best = (val_loss, epoch + 1, {k_: v.clone() for k_, v in proxy.state_dict().items()})
        if (time.monotonic() - start) / 60.0 > max_minutes:
            break
    proxy.load_state_dict(best[2])
    proxy.eval()
    scales = laplace_scales(proxy, params[val], notes[val], descriptors[val].astype(np.float64))
    proxy.meta["error_scale_z"] = {n: round(float(v), 5) for n, v in zip(proxy.descriptor_names, scales, strict=True)}
    proxy.meta["calibration"] = {"table": "validation split", "rows": int(n_val)}
    facts = {
        "training_rows": int(tr.size),
        "validation_rows": int(n_val),
        "epochs_run": len(history),
        "best_epoch": best[1],
        "best_val_l1_normalized": round(best[0], 5),
        "batch_size": batch_size,
        "learning_rate": lr,
        "seed": seed,
        "train_minutes": round((time.monotonic() - start) / 60.0, 2),
        "history": history,
    }
    return proxy, facts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agents.proxy.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, nargs="+", required=True, help="training table folder(s)")
    parser.add_argument("--heldout", type=Path, default=None, help="held-out table folder for the final metrics")
    parser.add_argument("--out", type=Path, default=Path("models/proxy"), help="proxy folder to write")
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 512, 512], help="hidden layer sizes")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (one-cycle)")
    parser.add_argument("--max-minutes", type=float, default=60.0, help="stop after the epoch that passes this")
    parser.add_argument("--val-fraction", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=None, help="default: training.seed")
    parser.add_argument("--init", type=Path, default=None, help="continue training this proxy folder")
    parser.add_argument(
        "--chroma-head",
        choices=CHROMA_HEADS,
        default="rotate",
        help="rotate: predict chroma relative to each oscillator's pitch class, rotated into place; direct: as is",
    )
    parser.add_argument(
        "--log-levels",
        action="store_true",
        help="also feed gains (levels, sustain, volume, waves' harmonics) on a log scale; widens an --init",
    )
    parser.add_argument(
        "--envelope-inputs",
        action="store_true",
        help="also feed the amp and mod envelopes and the moved cutoff at the snapshot frames; widens an --init",
    )
    parser.add_argument(
        "--settings", type=Path, default=None, help="settings YAML (default: environment_settings.yaml)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.settings)
        if not 0.0 < args.val_fraction < 0.5 or args.epochs < 1 or args.batch_size < 1 or min(args.hidden) < 1:
            raise ValueError("need 0 < --val-fraction < 0.5, --epochs >= 1, --batch-size >= 1, --hidden sizes >= 1")
        params, notes, descriptors, target = load_tables(args.table)
        seed = settings.training.seed if args.seed is None else args.seed
        proxy, facts = train(
            params,
            notes,
            descriptors,
            hidden=tuple(args.hidden),
            init=Proxy.load(args.init) if args.init is not None else None,
            chroma_head=args.chroma_head,
            log_levels=args.log_levels,
            envelope_times_s=snapshot_times_s(target) if args.envelope_inputs else (),
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            max_minutes=args.max_minutes,
            val_fraction=args.val_fraction,
            seed=seed,
        )
        metrics: dict[str, Any] = {}
        if args.heldout is not None:
            manifest, hp, hn, hd = load_table(args.heldout)
            if table_target(manifest) != target:
                raise TableError(f"{args.heldout}: held-out table renders another target than the training tables")
            metrics = evaluate(proxy, hp, hn, hd.astype(np.float64))
    except (SettingsError, TableError, ProxyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta = {
        "target": target,
        "training": facts | {"tables": [str(t) for t in args.table], "init": str(args.init) if args.init else None},
        "metrics": {"random": {k: v for k, v in metrics.items() if k not in ("l1_normalized", "l1_units")}}
        if metrics
        else {},
    }
    proxy.save(args.out, meta)
    (args.out / "report").mkdir(exist_ok=True)
    (args.out / "report" / "eval.json").write_text(
        json.dumps({"random": metrics | {"table": str(args.heldout)}}, indent=1) + "\n", encoding="utf-8"
    )
    print(
        f"{args.out}: best val L1 {facts['best_val_l1_normalized']} (epoch {facts['best_epoch']})"
        + (f", held-out MRR {metrics['mrr']}" if metrics else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
