"""Evaluate a neural proxy on held-out renders, as synth-proxy does.

Input: a proxy folder (`Proxy.load`), and held-out sounds: a table folder (`synth.lookup_store`
layout, rendered with another sampler and seed than the training table) and/or `--presets N`
perturbed factory presets rendered on the spot (the preset-like sounds synth-proxy evaluates on).
Output (printed as JSON with `--json`, also returned by `evaluate`): L1 error per descriptor
(in z-normalized units of the proxy's training set, and in the descriptor's own units), the mean
normalized L1, and MRR: for each held-out sound, the rank of its true descriptor vector among
`candidates` (1,000) true vectors, ranked by L1 distance to the proxy's prediction; MRR is the mean
of 1/rank (1.0 = always first). Two distances: plain L1 on z-scored descriptors (`mrr`, synth-proxy's
protocol) and the maximum-likelihood ranking under the proxy's own error model (`mrr_weighted`):
with an error head (`agents.proxy.error_head`), each descriptor's error divided by the head's
per-sound scale, squared and summed (Gaussian head) or summed (Laplace head); without one, L1 with
each descriptor divided by the global `proxy.yaml` `error_scale_z` (Laplace). Scales are fitted
on renders outside the held-out sets (`agents.proxy.calibrate`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.proxy.bf16 import PRECISIONS
from agents.proxy.error_head import POWER, ErrorHead, abs_errors_z, load_error_head, nll_terms, predict_scales
from agents.proxy.model import Proxy, ProxyError
from features.names import expand
from settings import SettingsError, load_settings
from synth.lookup_store import TableError, load_table


def mean_reciprocal_rank(
    predicted: np.ndarray,
    true: np.ndarray,
    candidates: int = 1000,
    scale: np.ndarray | None = None,
    power: int = 1,
) -> float:
    """predicted, true [N, K] (same normalized space): MRR over groups of `candidates` sounds.

    `scale` [K] (one per descriptor) or [N, K] (one per query: the proxy's error scales at that
    query's params, `agents.proxy.error_head`): rank candidate j for query i by
    sum_k (|predicted_ik - true_jk| / scale_ik)^power (the Laplace log-likelihood for power 1, the
    Gaussian for 2) instead of plain L1."""
    n, k = predicted.shape
    if power not in (1, 2):
        raise ValueError(f"MRR power must be 1 or 2, got {power}")
    if n < 2:
        raise ValueError(f"MRR needs at least 2 held-out sounds, got {n}")
    per_query = None
    if scale is not None:
        scale = np.asarray(scale, dtype=np.float64)
        if scale.shape not in ((k,), (n, k)) or not np.all(scale > 0):
            raise ValueError(f"MRR scale must be [{k}] or [{n}, {k}] positive values, got shape {scale.shape}")
        if scale.ndim == 1:
            predicted, true = predicted / scale, true / scale
        else:
            per_query = torch.from_numpy(scale)
    size = min(candidates, n)
    reciprocal: list[np.ndarray] = []
    for start in range(0, n - size + 1, size):
        p = torch.from_numpy(predicted[start : start + size]).double()
        t = torch.from_numpy(true[start : start + size]).double()
        if per_query is None:
            dist = torch.cdist(p, t, p=float(power))  # [size, size]: prediction i vs candidate j
        else:
            inv = 1.0 / per_query[start : start + size]
            dist = torch.cat(
                [
                    ((p[i : i + 64, None, :] - t[None]).abs() * inv[i : i + 64, None, :]).pow(power).sum(-1)
                    for i in range(0, size, 64)
                ]
            )
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


def laplace_scales(proxy: Proxy, params: np.ndarray, notes: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
    """Maximum-likelihood Laplace scale of the proxy's error per descriptor [K] (z-units): mean |error|.

    Fit it on renders the proxy was neither trained nor will be judged on (a validation split or a
    calibration table from the training distribution), never on a held-out set."""
    return np.maximum(abs_errors_z(proxy, params, notes, descriptors).mean(axis=0), 1e-6)


KEEP_GROUPS = ("loudness", "specshape", "pitch")  # the imitation environment's default features_keep


def evaluate(
    proxy: Proxy,
    params: np.ndarray,
    notes: np.ndarray,
    descriptors: np.ndarray,
    candidates: int = 1000,
    scale: np.ndarray | None = None,
    head: ErrorHead | None = None,
) -> dict[str, Any]:
    """Metrics of a proxy against true descriptors [N, K] of held-out renders.

    `mrr` ranks on every descriptor the proxy predicts; `mrr_keep` on the loudness, specshape and
    pitch groups only (what the imitation environment observes by default; chroma and high MFCCs of
    noisy patches change with the noise realization, which no proxy can predict). With error scales
    (`scale`, default the proxy's `error_scale_z`) also `mrr_weighted` and `mrr_keep_weighted`: the
    same rankings with each descriptor divided by its scale, and `nll`, the mean negative
    log-likelihood of the truth under that error model (nats per descriptor, with its constant, so
    Laplace and Gaussian compare; lower is better calibrated). With an error `head`
    (`agents.proxy.error_head`) these use its per-sound scales and its kind (`error_model`), and the
    global-scale versions are kept as `mrr_weighted_global`, `mrr_keep_weighted_global` and
    `nll_global`.
    """
    predicted = predict_table(proxy, params, notes)
    mean, std = proxy.out_mean.numpy().astype(np.float64), proxy.out_std.numpy().astype(np.float64)
    pred_z = (predicted - mean) / std
    true_z = (descriptors - mean) / std
    abs_z = np.abs(pred_z - true_z)
    l1_z = abs_z.mean(axis=0)
    l1_units = np.abs(predicted - descriptors).mean(axis=0)
    names = proxy.descriptor_names
    keep = [names.index(n) for n in expand(KEEP_GROUPS) if n in names]
    scale = proxy.error_scale_z if scale is None else scale

    def weighted(s: np.ndarray, suffix: str, kind: str) -> dict[str, float]:
        s_keep, power = s[..., keep], POWER[kind]
        return {
            f"mrr_weighted{suffix}": round(mean_reciprocal_rank(pred_z, true_z, candidates, s, power), 4),
            f"mrr_keep_weighted{suffix}": round(
                mean_reciprocal_rank(pred_z[:, keep], true_z[:, keep], candidates, s_keep, power), 4
            ),
            f"nll{suffix}": round(float(nll_terms(kind, abs_z, s).mean()), 4),
        }

    metrics: dict[str, Any] = {}
    if head is not None:
        metrics |= {"error_model": head.kind} | weighted(predict_scales(proxy, head, params, notes), "", head.kind)
    if scale is not None:
        metrics |= weighted(np.asarray(scale, dtype=np.float64), "_global" if head is not None else "", "laplace")
    return metrics | {
        "held_out": int(params.shape[0]),
        "candidates": int(min(candidates, params.shape[0])),
        "mrr": round(mean_reciprocal_rank(pred_z, true_z, candidates), 4),
        "mrr_keep": round(mean_reciprocal_rank(pred_z[:, keep], true_z[:, keep], candidates), 4),
        "l1_normalized_mean": round(float(l1_z.mean()), 4),
        "l1_normalized_keep_mean": round(float(l1_z[keep].mean()), 4),
        "l1_normalized": {n: round(float(v), 4) for n, v in zip(names, l1_z, strict=True)},
        "l1_units": {n: round(float(v), 4) for n, v in zip(names, l1_units, strict=True)},
    }


def preset_heldout(
    proxy: Proxy, n: int, seed: int = 0, noise: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n held-out presets: the factory presets (never in a Sobol training table), each perturbed by
    Gaussian noise (std `noise`) on its continuous parameters, at random notes 36..84, rendered and
    analyzed on the proxy's own target (probe length, summary frames, feature settings).

    Returns params, notes, descriptors, and the descriptors of a second render with another noise
    seed: the same patch heard twice, whose MRR is the ceiling any predictor of the mean can reach."""
    from features.config import FeatureSettings
    from synth.lookup_store import TablePlan, describe_params
    from synth.params import CONTINUOUS_INDICES, default_vector, snap_vector
    from synth.presets import factory_presets

    target = proxy.meta.get("target")
    if not isinstance(target, dict):
        raise ProxyError("proxy.yaml has no 'target' (probe and summary frames); train it with agents.proxy.train")
    presets = np.stack([p.params_0to1 for _, p in sorted(factory_presets().items())])
    rng = np.random.default_rng(seed)
    params = presets[np.arange(n) % len(presets)].copy()
    cont = list(CONTINUOUS_INDICES)
    params[:, cont] += rng.normal(0.0, noise, size=(n, len(cont))).astype(np.float32)
    params = snap_vector(params)
    notes = rng.integers(36, 85, size=n).astype(np.float32)
    plan = TablePlan(
        n=n,
        param_names=("osc1_wave",),
        base_0to1=tuple(map(float, default_vector())),
        sample_rate_hz=int(target["sample_rate_hz"]),
        probe_s=float(target["probe_s"]),
        summary_frames=int(target["summary_frames"]),
    )
    features = FeatureSettings(**target["features"])
    descriptors = describe_params(params, notes, plan, features, seed=seed)
    again = describe_params(params, notes, plan, features, seed=seed + 7919)
    return params, notes, descriptors.astype(np.float64), again.astype(np.float64)


def rerender_ceiling(
    proxy: Proxy,
    first: np.ndarray,
    second: np.ndarray,
    candidates: int,
    scale: np.ndarray | None = None,
    power: int = 1,
) -> dict[str, float]:
    """MRR and mean normalized L1 of a second render (another noise seed) taken as the prediction;
    `mrr_weighted` with `scale` ([K] or per sound [N, K]; default the proxy's `error_scale_z`) and
    `power` (2 for a Gaussian error head's scales)."""
    mean, std = proxy.out_mean.numpy().astype(np.float64), proxy.out_std.numpy().astype(np.float64)
    a, b = (first - mean) / std, (second - mean) / std
    scale = proxy.error_scale_z if scale is None else scale
    weighted = {} if scale is None else {"mrr_weighted": round(mean_reciprocal_rank(b, a, candidates, scale, power), 4)}
    return {
        "mrr": round(mean_reciprocal_rank(b, a, candidates), 4),
        **weighted,
        "l1_normalized_mean": round(float(np.abs(a - b).mean()), 4),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agents.proxy.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/proxy"), help="proxy folder")
    parser.add_argument("--table", type=Path, default=None, help="held-out table folder (python -m synth.lookup build)")
    parser.add_argument("--presets", type=int, default=1000, help="perturbed factory presets to render (0: none)")
    parser.add_argument("--candidates", type=int, default=1000, help="candidates per MRR group")
    parser.add_argument("--update-model", action="store_true", help="write the metrics into proxy.yaml and report/")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="run the no-grad path in this precision, not the folder's no_grad_precision (not with --update-model)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object (default: a short summary)")
    parser.add_argument(
        "--settings", type=Path, default=None, help="settings YAML (default: environment_settings.yaml)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: dict[str, Any] = {"model": str(args.model)}
    try:
        settings = load_settings(args.settings)
        proxy = Proxy.load(args.model)
        if args.precision is not None:
            if args.update_model:
                raise ValueError("--precision measures another precision than the folder's: not with --update-model")
            proxy.set_precision(args.precision)
        head = load_error_head(args.model, proxy)
        result["precision"] = proxy.precision  # of the no-grad path the predictions ran on (agents.proxy.bf16)
        if args.candidates < 2 or args.presets < 0 or (args.table is None and args.presets < 2):
            raise ValueError("need --candidates >= 2, and --table or --presets >= 2")
        if args.table is not None:
            _, params, notes, descriptors = load_table(args.table)
            result["random"] = {"table": str(args.table)} | evaluate(
                proxy, params, notes, descriptors.astype(np.float64), args.candidates, head=head
            )
        if args.presets:
            params, notes, descriptors, again = preset_heldout(proxy, args.presets, seed=settings.training.seed + 1)
            result["presets"] = evaluate(proxy, params, notes, descriptors, args.candidates, head=head)
            scales = None if head is None else predict_scales(proxy, head, params, notes)
            power = 1 if head is None else head.power
            result["presets"]["rerender_ceiling"] = rerender_ceiling(
                proxy, descriptors, again, args.candidates, scales, power
            )
    except (SettingsError, ProxyError, TableError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.update_model:
        summary = {
            k: {m: v for m, v in r.items() if m not in ("l1_normalized", "l1_units")}
            for k, r in result.items()
            if isinstance(r, dict)
        }
        proxy.save(args.model, {"metrics": summary | {"precision": proxy.precision}})
        (args.model / "report").mkdir(exist_ok=True)
        (args.model / "report" / "eval.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result))
    else:
        for key in ("random", "presets"):
            if key in result:
                r = result[key]
                print(
                    f"{key}: {r['held_out']} held-out sounds, MRR {r['mrr']} (loudness/specshape/pitch only: "
                    f"{r['mrr_keep']}) among {r['candidates']}, mean normalized L1 {r['l1_normalized_mean']}"
                    + (f"; error-scale weighted MRR {r['mrr_weighted']}" if "mrr_weighted" in r else "")
                )
                if "rerender_ceiling" in r:
                    print(f"  the same patches rendered again with another noise seed: {r['rerender_ceiling']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
