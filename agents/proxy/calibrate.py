"""`python -m agents.proxy.calibrate`: fit a proxy's error model and store it in the proxy folder.

Input: a proxy folder and calibration tables (`synth.lookup_store` layout, the training target,
rendered with seeds that neither the training nor the held-out tables use). Output, with
`--table`: `proxy.yaml` `error_scale_z` (descriptor -> maximum-likelihood Laplace scale of the
proxy's error in z-units, the mean |prediction - truth|) and `calibration` (table, rows); with
`--head-table`: the error head (`agents.proxy.error_head`: per-sound scales, a small MLP on the
proxy's input encoding; `--head-kind gaussian` or `laplace`) in `error_head.safetensors` and
`proxy.yaml` `error_head`. `agents.proxy.evaluate` then also reports `mrr_weighted`: candidates
ranked by the log-likelihood of the proxy's prediction under that error model.

The scales must not come from a held-out set: they are part of the model, fitted like its weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from agents.proxy.error_head import fit_error_head, save_error_head
from agents.proxy.evaluate import laplace_scales
from agents.proxy.model import Proxy, ProxyError
from synth.lookup_store import TableError, load_table


def load_matching(proxy: Proxy, table: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A table's params, notes, descriptors (float64), refused when it renders another target than the proxy's."""
    manifest, params, notes, descriptors = load_table(table)
    target = proxy.meta.get("target")
    plan = manifest["plan"]
    if isinstance(target, dict) and any(plan.get(k) != target.get(k) for k in ("sample_rate_hz", "probe_s")):
        raise TableError(f"{table}: renders another probe than the proxy was trained on ({target})")
    if isinstance(target, dict) and int(plan.get("summary_frames", 0)) != int(target.get("summary_frames", 0)):
        raise TableError(f"{table}: summarizes other frames than the proxy was trained on ({target})")
    return params, notes, descriptors.astype(np.float64)


def calibrate(proxy: Proxy, table: Path) -> dict[str, float]:
    """Fit the error scales on `table` (same target as the proxy's training tables); returns them by name."""
    params, notes, descriptors = load_matching(proxy, table)
    if params.shape[0] < 100:
        raise TableError(f"{table}: {params.shape[0]} rows is too few to fit error scales (need >= 100)")
    scales = laplace_scales(proxy, params, notes, descriptors)
    return {n: round(float(v), 5) for n, v in zip(proxy.descriptor_names, scales, strict=True)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.proxy.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/proxy"), help="proxy folder (updated in place)")
    parser.add_argument("--table", type=Path, default=None, help="table for the global error scales (not held out)")
    parser.add_argument("--head-table", type=Path, nargs="+", default=[], help="tables for the per-sound error head")
    parser.add_argument(
        "--head-kind", choices=("gaussian", "laplace"), default="gaussian", help="the error head's error model"
    )
    parser.add_argument("--head-hidden", type=int, nargs="+", default=[256, 256], help="error head layer sizes")
    parser.add_argument("--head-epochs", type=int, default=24, help="error head training epochs")
    parser.add_argument("--head-batch-size", type=int, default=4096, help="error head batch size (rows)")
    parser.add_argument("--head-lr", type=float, default=2e-3, help="error head peak learning rate")
    parser.add_argument("--seed", type=int, default=0, help="error head initialization and shuffling seed")
    args = parser.parse_args(argv)
    try:
        if args.table is None and not args.head_table:
            raise ValueError("give --table (global error scales) and/or --head-table (per-sound error head)")
        proxy = Proxy.load(args.model)
        if args.table is not None:
            scales = calibrate(proxy, args.table)
            rows = int(load_table(args.table)[1].shape[0])
            proxy.save(args.model, {"error_scale_z": scales, "calibration": {"table": str(args.table), "rows": rows}})
            worst = sorted(scales.items(), key=lambda kv: kv[1])
            print(f"{args.model}: error scales from {rows} rows; best {worst[0]}, worst {worst[-1]}")
        if args.head_table:
            parts = [load_matching(proxy, t) for t in args.head_table]
            params, notes, descriptors = (np.concatenate(p) for p in zip(*parts, strict=True))
            head, facts = fit_error_head(
                proxy,
                params,
                notes,
                descriptors,
                hidden=args.head_hidden,
                epochs=args.head_epochs,
                batch_size=args.head_batch_size,
                lr=args.head_lr,
                seed=args.seed,
                kind=args.head_kind,
            )
            save_error_head(args.model, proxy, head, facts | {"tables": [str(t) for t in args.head_table]})
            print(
                f"{args.model}: error head from {facts['rows']} rows; validation NLL {facts['val_nll']} "
                f"(global scales {facts['val_nll_global_scales']})"
            )
    except (ProxyError, TableError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
