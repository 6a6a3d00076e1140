"""`python -m agents.proxy.calibrate`: fit a proxy's error scales and store them in its `proxy.yaml`.

Input: a proxy folder and a calibration table (`synth.lookup_store` layout, the training
distribution and target, rendered with a seed that neither the training nor the held-out tables
use). Output: `proxy.yaml` `error_scale_z` (descriptor -> maximum-likelihood Laplace scale of the
proxy's error in z-units, the mean |prediction - truth|) and `calibration` (table, rows).
`agents.proxy.evaluate` then also reports `mrr_weighted`: candidates ranked by the Laplace
log-likelihood of the proxy's prediction, sum_k |pred_k - true_k| / scale_k.

The scales must not come from a held-out set: they are part of the model, fitted like its weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from agents.proxy.evaluate import laplace_scales
from agents.proxy.model import Proxy, ProxyError
from synth.lookup_store import TableError, load_table


def calibrate(proxy: Proxy, table: Path) -> dict[str, float]:
    """Fit the error scales on `table` (same target as the proxy's training tables); returns them by name."""
    manifest, params, notes, descriptors = load_table(table)
    target = proxy.meta.get("target")
    plan = manifest["plan"]
    if isinstance(target, dict) and any(plan.get(k) != target.get(k) for k in ("sample_rate_hz", "probe_s")):
        raise TableError(f"{table}: renders another probe than the proxy was trained on ({target})")
    if isinstance(target, dict) and int(plan.get("summary_frames", 0)) != int(target.get("summary_frames", 0)):
        raise TableError(f"{table}: summarizes other frames than the proxy was trained on ({target})")
    if params.shape[0] < 100:
        raise TableError(f"{table}: {params.shape[0]} rows is too few to fit error scales (need >= 100)")
    scales = laplace_scales(proxy, params, notes, descriptors.astype(np.float64))
    return {n: round(float(v), 5) for n, v in zip(proxy.descriptor_names, scales, strict=True)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.proxy.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/proxy"), help="proxy folder (updated in place)")
    parser.add_argument("--table", type=Path, required=True, help="calibration table folder (not a held-out set)")
    args = parser.parse_args(argv)
    try:
        proxy = Proxy.load(args.model)
        scales = calibrate(proxy, args.table)
        rows = int(load_table(args.table)[1].shape[0])
    except (ProxyError, TableError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    proxy.save(args.model, {"error_scale_z": scales, "calibration": {"table": str(args.table), "rows": rows}})
    worst = sorted(scales.items(), key=lambda kv: kv[1])
    print(f"{args.model}: error scales from {rows} rows; best {worst[0]}, worst {worst[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
