"""Evaluate a neural proxy on held-out renders, as synth-proxy does.

Input: a proxy folder (`Proxy.load`) and a held-out table folder (`synth.lookup_store` layout,
rendered with another sampler/seed than the training table).
Output (printed as JSON with `--json`, also returned by `evaluate`): L1 error per descriptor
(in z-normalized units of the proxy's training set, and in the descriptor's own units), the mean
normalized L1, and MRR: for each held-out sound, the rank of its true descriptor vector among
`candidates` (1,000) true vectors, ranked by L1 distance to the proxy's prediction; MRR is the mean
of 1/rank (1.0 = always first).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.proxy.model import Proxy, ProxyError
from synth.lookup_store import TableError, load_table


def mean_reciprocal_rank(predicted: np.ndarray, true: np.ndarray, candidates: int = 1000) -> float:
    """predicted, true [N, K] (same normalized space): MRR over groups of `candidates` sounds."""
    n = predicted.shape[0]
    if n < 2:
        raise ValueError(f"MRR needs at least 2 held-out sounds, got {n}")
    size = min(candidates, n)
    reciprocal: list[np.ndarray] = []
    for start in range(0, n - size + 1, size):
        p = torch.from_numpy(predicted[start : start + size]).double()
        t = torch.from_numpy(true[start : start + size]).double()
        dist = torch.cdist(p, t, p=1.0)  # [size, size]: prediction i vs candidate j
        own = dist.diagonal().unsqueeze(1)
        rank = (dist < own).sum(dim=1) + 1  # ties count in the prediction's favour
        reciprocal.append((1.0 / rank.double()).numpy())
    return float(np.concatenate(reciprocal).mean())


def predict_table(proxy: Proxy, params: np.ndarray, notes: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    out = []
    with torch.no_grad():
        for s in range(0, params.shape[0], batch_size):
            out.append(
                proxy.predict(
                    torch.from_numpy(params[s : s + batch_size]), torch.from_numpy(notes[s : s + batch_size])
                ).numpy()
            )
    return np.concatenate(out)


def evaluate(
    proxy: Proxy, params: np.ndarray, notes: np.ndarray, descriptors: np.ndarray, candidates: int = 1000
) -> dict[str, Any]:
    """Metrics of a proxy against true descriptors [N, K] of held-out renders."""
    predicted = predict_table(proxy, params, notes)
    mean, std = proxy.out_mean.numpy().astype(np.float64), proxy.out_std.numpy().astype(np.float64)
    pred_z = (predicted - mean) / std
    true_z = (descriptors - mean) / std
    l1_z = np.abs(pred_z - true_z).mean(axis=0)
    l1_units = np.abs(predicted - descriptors).mean(axis=0)
    names = proxy.descriptor_names
    return {
        "held_out": int(params.shape[0]),
        "candidates": int(min(candidates, params.shape[0])),
        "mrr": round(mean_reciprocal_rank(pred_z, true_z, candidates), 4),
        "l1_normalized_mean": round(float(l1_z.mean()), 4),
        "l1_normalized": {n: round(float(v), 4) for n, v in zip(names, l1_z, strict=True)},
        "l1_units": {n: round(float(v), 4) for n, v in zip(names, l1_units, strict=True)},
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agents.proxy.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/proxy"), help="proxy folder")
    parser.add_argument(
        "--table", type=Path, required=True, help="held-out table folder (python -m synth.lookup build)"
    )
    parser.add_argument("--candidates", type=int, default=1000, help="candidates per MRR group")
    parser.add_argument("--json", action="store_true", help="print one JSON object (default: a short summary)")
    parser.add_argument(
        "--settings", type=Path, default=None, help="settings YAML (unused here; accepted for symmetry)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        proxy = Proxy.load(args.model)
        _, params, notes, descriptors = load_table(args.table)
        if args.candidates < 2:
            raise ValueError(f"--candidates must be >= 2, got {args.candidates}")
        result = {"model": str(args.model), "table": str(args.table)} | evaluate(
            proxy, params, notes, descriptors.astype(np.float64), args.candidates
        )
    except (ProxyError, TableError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.model} on {result['held_out']} held-out sounds: MRR {result['mrr']} "
            f"(among {result['candidates']}), mean normalized L1 {result['l1_normalized_mean']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
