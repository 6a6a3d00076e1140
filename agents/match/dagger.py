"""DAgger: the preset-matching agent imitates a privileged oracle (`python -m agents.match.dagger`).

Input: settings (`match.*`, `training.seed`, `training.threads`) and a `DaggerConfig` (rounds,
episodes, stages, network size, ...). Output: a model directory (`policy.safetensors` +
`model.yaml`, the pickle-free MLP of `agents.policy`, flat actions, `clip` output) that
`python -m agents.evaluate --task match --agent DIR` runs, plus `report/eval.json`.

In training the environment knows the target's parameters, so the ideal flat action at any state
is the oracle's `clip((target_x - x) / delta_max, -1, 1)` on the active parameters. Each round
rolls out a mixture (per row and step: the oracle with probability beta, else the current policy)
in one batched `MatchEngine` over fresh training targets (the training stream, never the held-out
set), with the rows spread over the configured stages; every visited observation is labelled
with the oracle action and added to the aggregate; then the MLP is fitted to the aggregate by
regression (mean squared error). Round 0 is the pure oracle (behaviour cloning); beta decays by
`beta_decay` per round. After each round the deterministic policy is rolled out on the validation
presets of every stage (`agents.match.rollout`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.match.curriculum import check_stage, validation_presets
from agents.match.engine import MatchEngine
from agents.match.probe import Hearing, Renderer
from agents.match.refine import DEFAULT_REFINE, RefineConfig
from agents.match.rollout import rollout
from agents.policy import write_model_dir
from settings.loader import Settings, SettingsError, load_settings, with_overrides

DAGGER_SEED_OFFSET = 70_000  # DAgger targets come from the training stream of another seed


@dataclass(frozen=True)
class DaggerConfig:
    rounds: int = 6
    episodes: int = 384  # per round, spread evenly over `stages`
    steps: int = 40  # rollout steps per episode when collecting
    stages: tuple[int, ...] = (1, 2, 3)
    n_envs: int = 128  # episodes rendered in one batch
    beta0: float = 1.0  # oracle share in round 0
    beta_decay: float = 0.5  # oracle share multiplies by this each round
    act_noise: float = 0.0  # Gaussian noise on the learner's actions while collecting (exploration)
    warm_prob: float = 0.25  # share of episodes that start near the target (fine-correction states)
    warm_noise: float = 0.05  # std of the near-target start
    hidden: tuple[int, ...] = (512, 256)
    epochs: int = 4  # passes over the aggregate per round
    lr: float = 1e-3
    batch_size: int = 512
    max_pairs: int = 400_000  # aggregate cap (oldest pairs dropped first)
    label_clip: float = 1.0  # labels: the remaining difference / delta_max, clipped to +-label_clip
    seed: int = 0

    def check(self) -> None:
        for name in ("rounds", "episodes", "steps", "n_envs", "epochs", "batch_size", "max_pairs"):
            if getattr(self, name) <= 0:
                raise ValueError(f"dagger {name} must be > 0, got {getattr(self, name)}")
        if not self.stages:
            raise ValueError("dagger needs at least one stage")
        for stage in self.stages:
            check_stage(stage)
        if not 0.0 <= self.beta0 <= 1.0 or not 0.0 <= self.beta_decay <= 1.0:
            raise ValueError(f"beta0 and beta_decay must be in [0, 1], got {self.beta0}, {self.beta_decay}")
        if not 0.0 <= self.warm_prob <= 1.0 or self.warm_noise < 0 or self.act_noise < 0:
            raise ValueError("warm_prob must be in [0, 1], warm_noise and act_noise >= 0")
        if self.label_clip < 1.0:
            raise ValueError(f"dagger label_clip must be >= 1 (the action range), got {self.label_clip}")
        if not self.hidden or min(self.hidden) <= 0:
            raise ValueError(f"dagger hidden sizes must be > 0, got {self.hidden}")


class ActorMLP(torch.nn.Module):
    """Standardized input -> ReLU MLP -> raw action (clipped to [-1, 1] when acting)."""

    def __init__(self, obs_size: int, action_size: int, hidden: Sequence[int], mean: np.ndarray, std: np.ndarray):
        super().__init__()
        sizes = [obs_size, *hidden, action_size]
        layers: list[torch.nn.Module] = []
        for i in range(len(sizes) - 1):
            layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        self.net = torch.nn.Sequential(*layers)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net((obs - self.mean) / self.std)

    def act(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = self(torch.as_tensor(obs, dtype=torch.float32))
        return out.clamp(-1.0, 1.0).numpy()

    @classmethod
    def from_layers(
        cls, layers: Sequence[tuple[np.ndarray, np.ndarray]], mean: np.ndarray, std: np.ndarray
    ) -> ActorMLP:
        """The inverse of `numpy_layers` (an exported model, to train further) under a new standardization."""
        sizes = [w.shape[0] for w, _ in layers]
        net = cls(layers[0][0].shape[1], sizes[-1], sizes[:-1], mean, std)
        w0, b0 = (np.asarray(a, np.float64) for a in layers[0])
        unfolded = [(w0 * std[None, :], b0 + w0 @ mean), *layers[1:]]
        linears = [m for m in net.net if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for lin, (w, b) in zip(linears, unfolded, strict=True):
                lin.weight.copy_(torch.as_tensor(np.asarray(w), dtype=torch.float32))
                lin.bias.copy_(torch.as_tensor(np.asarray(b), dtype=torch.float32))
        return net

    def numpy_layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(weight [out, in], bias [out]) pairs with the standardization folded into the first layer."""
        linears = [m for m in self.net if isinstance(m, torch.nn.Linear)]
        out = [(lin.weight.detach().numpy().copy(), lin.bias.detach().numpy().copy()) for lin in linears]
        mean, std = self.mean.numpy().astype(np.float64), self.std.numpy().astype(np.float64)
        w0, b0 = out[0]
        w0_folded = w0.astype(np.float64) / std[None, :]
        out[0] = (w0_folded.astype(np.float32), (b0 - w0_folded @ mean).astype(np.float32))
        return out


def oracle_actions(engine: MatchEngine, label_clip: float = 1.0) -> np.ndarray:
    """The privileged flat action [N, 24]: the remaining difference on the active parameters in units
    of delta_max, clipped to +-label_clip (1: the action itself, at most delta_max per step; larger:
    a regression label that keeps the full remaining difference, clipped to the action when acting)."""
    wanted = np.clip((engine.target_x - engine.x) / engine.codec.delta_max, -label_clip, label_clip)
    return (wanted * engine.active).astype(np.float32)


def collect(
    engine: MatchEngine,
    stages: Sequence[int],
    steps: int,
    beta: float,
    learner: Callable[[np.ndarray], np.ndarray] | None,
    rng: np.random.Generator,
    act_noise: float = 0.0,
    label_clip: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, dict[int, float]]:
    """One batch of episodes: (observations [steps*N, D] float16, oracle labels [steps*N, 24], final
    median loss per stage). Rows are spread over `stages`; each step a row follows the oracle with
    probability `beta`, else the learner."""
    n = engine.n
    row_stage = np.asarray(stages, dtype=np.int64)[np.arange(n) % len(stages)]
    for stage in stages:
        engine.set_stage(int(stage))
        engine.reset_rows(np.flatnonzero(row_stage == stage))
    observations = np.zeros((steps, n, engine.layout.size), np.float16)
    labels = np.zeros((steps, n, engine.codec.size), np.float32)
    for t in range(steps):
        obs = engine.observe()
        label = oracle_actions(engine, label_clip)
        observations[t], labels[t] = obs, label
        oracle = np.clip(label, -1.0, 1.0)
        action = oracle
        if learner is not None and beta < 1.0:
            learned = learner(obs)
            if act_noise > 0:
                learned = np.clip(learned + rng.normal(0.0, act_noise, learned.shape), -1.0, 1.0)
            use_oracle = rng.random(n) < beta
            action = np.where(use_oracle[:, None], oracle, learned).astype(np.float32)
        engine.step(action)
    final = {int(s): float(np.median(engine.loss[row_stage == s])) for s in stages}
    return observations.reshape(steps * n, -1), labels.reshape(steps * n, -1), final


def fit(
    net: ActorMLP, obs: np.ndarray, labels: np.ndarray, epochs: int, lr: float, batch_size: int, seed: int
) -> float:
    """Mean-squared-error regression of the raw output on the labels; returns the last epoch's MSE."""
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    labels_t = torch.from_numpy(labels)
    mse = float("nan")
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(obs), generator=gen).numpy()
        total, count = 0.0, 0
        for lo in range(0, len(order), batch_size):
            idx = np.sort(order[lo : lo + batch_size])
            x = torch.from_numpy(obs[idx].astype(np.float32))
            loss = torch.nn.functional.mse_loss(net(x), labels_t[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        mse = total / count
    net.eval()
    return mse


def validate(
    net: ActorMLP, settings: Settings, stages: Sequence[int], renderer: Renderer, hearing: Hearing
) -> dict[str, float]:
    """Median final loss and success rate per stage on the validation presets (T = match.max_steps)."""
    targets = validation_presets(settings.match.validation_presets, settings.match.seed)
    out: dict[str, float] = {}
    for stage in stages:
        res = rollout(
            net.act,
            targets,
            settings,
            stage,
            settings.match.max_steps,
            renderer=renderer,
            hearing=hearing,
            keep_trajectories=0,
        )
        out[f"s{stage}_median_loss"] = float(np.median(res.final_loss))
        out[f"s{stage}_success_rate"] = float(res.success.mean())
    return out


@dataclass
class DaggerResult:
    net: ActorMLP
    engine: MatchEngine
    settings: Settings
    history: list[dict[str, Any]] = field(default_factory=list)
    pairs: int = 0


def train_dagger(
    settings: Settings,
    config: DaggerConfig,
    *,
    renderer: Renderer | None = None,
    hearing: Hearing | None = None,
    log: Callable[[str], None] | None = None,
    init_layers: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
) -> DaggerResult:
    """Run the DAgger rounds; returns the fitted actor and the per-round history. With `init_layers`
    (an exported model's layers) training continues from that policy: round 0 already mixes it in
    with beta0, and `config.hidden` is ignored."""
    config.check()
    settings = with_overrides(
        settings,
        {
            "match.action_mode": "flat",
            "match.warm_start_prob": config.warm_prob,
            "match.warm_start_noise": config.warm_noise,
        },
    )
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    engine = MatchEngine(
        config.n_envs, settings, renderer=renderer, hearing=hearing, seed=settings.match.seed + DAGGER_SEED_OFFSET
    )
    eval_settings = with_overrides(settings, {"match.warm_start_prob": 0.0})
    obs_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    net: ActorMLP | None = None
    if init_layers is not None:  # the same function, standardized on the first round's data below
        size = init_layers[0][0].shape[1]
        net = ActorMLP.from_layers(init_layers, np.zeros(size, np.float32), np.ones(size, np.float32))
    history: list[dict[str, Any]] = []
    batches = max(1, -(-config.episodes // config.n_envs))
    for round_i in range(config.rounds):
        started = time.perf_counter()
        beta = 1.0 if net is None else config.beta0 * config.beta_decay**round_i
        learner = None if net is None else net.act
        finals: list[dict[int, float]] = []
        for _ in range(batches):
            obs, labels, final = collect(
                engine, config.stages, config.steps, beta, learner, rng, config.act_noise, config.label_clip
            )
            obs_parts.append(obs)
            label_parts.append(labels)
            finals.append(final)
        while sum(len(p) for p in obs_parts) - len(obs_parts[0]) >= config.max_pairs:
            obs_parts.pop(0)
            label_parts.pop(0)
        all_obs, all_labels = np.concatenate(obs_parts), np.concatenate(label_parts)
        collect_s = time.perf_counter() - started
        if round_i == 0:
            mean = all_obs.astype(np.float32).mean(axis=0)
            std = np.maximum(all_obs.astype(np.float32).std(axis=0), 1e-2)
            if net is None:
                net = ActorMLP(all_obs.shape[1], all_labels.shape[1], config.hidden, mean, std)
            else:
                net = ActorMLP.from_layers(net.numpy_layers(), mean, std)
        mse = fit(net, all_obs, all_labels, config.epochs, config.lr, config.batch_size, config.seed + round_i)
        entry: dict[str, Any] = {
            "round": round_i,
            "beta": round(beta, 4),
            "pairs": len(all_obs),
            "mse": round(mse, 5),
            "collect_median_loss": {s: float(np.median([f[s] for f in finals])) for s in config.stages},
            **validate(net, eval_settings, config.stages, engine.renderer, engine.hearing),
            "round_s": round(time.perf_counter() - started, 1),
            "collect_s": round(collect_s, 1),
        }
        history.append(entry)
        if log is not None:
            log(json.dumps(entry))
    assert net is not None  # rounds > 0 was checked
    return DaggerResult(net, engine, settings, history, len(all_obs))


def export(
    result: DaggerResult,
    out: Path,
    config: DaggerConfig,
    metrics: dict[str, Any],
    refine: RefineConfig | None = DEFAULT_REFINE,
) -> Path:
    """Write the model directory (flat actions, `clip` output; with `refine`, the hybrid agent's
    section: `agents.match.refine`) and report/eval.json."""
    from agents.match.train import model_meta

    settings = with_overrides(result.settings, {"match.warm_start_prob": 0.0})
    meta = model_meta(result.engine, settings, result.pairs, metrics, max(config.stages))
    meta["algorithm"] = "dagger"
    meta["dagger"] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
    meta["stages"] = list(config.stages)
    if refine is not None:
        meta["refine"] = refine.as_dict()
    write_model_dir(out, meta, result.net.numpy_layers(), activation="relu", output="clip")
    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    (report / "eval.json").write_text(json.dumps({"metrics": metrics, "history": result.history}, indent=1))
    return out


def build_parser() -> argparse.ArgumentParser:
    d = DaggerConfig()
    p = argparse.ArgumentParser(prog="python -m agents.match.dagger", description=__doc__.splitlines()[0])
    p.add_argument("--settings", default=None, help="settings YAML (default: environment_settings.yaml)")
    p.add_argument("--out", default="models/match_dagger", help="model directory to write")
    p.add_argument("--rounds", type=int, default=d.rounds)
    p.add_argument("--episodes", type=int, default=d.episodes, help="episodes per round (all stages)")
    p.add_argument("--steps", type=int, default=d.steps, help="steps per collected episode")
    p.add_argument("--stages", type=int, nargs="+", default=list(d.stages))
    p.add_argument("--n-envs", type=int, default=d.n_envs, help="episodes rendered per batch")
    p.add_argument("--beta0", type=float, default=d.beta0)
    p.add_argument("--beta-decay", type=float, default=d.beta_decay)
    p.add_argument("--act-noise", type=float, default=d.act_noise)
    p.add_argument("--warm-prob", type=float, default=d.warm_prob)
    p.add_argument("--warm-noise", type=float, default=d.warm_noise)
    p.add_argument("--hidden", type=int, nargs="+", default=list(d.hidden))
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--max-pairs", type=int, default=d.max_pairs)
    p.add_argument("--label-clip", type=float, default=d.label_clip, help="label range in delta_max units")
    p.add_argument("--seed", type=int, default=None, help="random seed (training.seed)")
    p.add_argument("--init", default=None, help="model directory to continue from (its layer sizes win)")
    p.add_argument("--no-refine", action="store_true", help="no refine section: evaluation runs the policy alone")
    return p


def config_from_args(args: argparse.Namespace, seed: int) -> DaggerConfig:
    return DaggerConfig(
        rounds=args.rounds,
        episodes=args.episodes,
        steps=args.steps,
        stages=tuple(args.stages),
        n_envs=args.n_envs,
        beta0=args.beta0,
        beta_decay=args.beta_decay,
        act_noise=args.act_noise,
        warm_prob=args.warm_prob,
        warm_noise=args.warm_noise,
        hidden=tuple(args.hidden),
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        max_pairs=args.max_pairs,
        label_clip=args.label_clip,
        seed=seed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.settings)
        if args.seed is not None:
            settings = with_overrides(settings, {"training.seed": args.seed})
        config = config_from_args(args, settings.training.seed)
        config.check()
    except (SettingsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    init_layers = None
    if args.init:
        from agents.policy import ModelError, load_model

        try:
            init_layers = load_model(args.init).policy.weights()
        except ModelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    torch.set_num_threads(max(1, settings.training.threads))  # the machine is shared
    started = time.perf_counter()
    result = train_dagger(
        settings, config, log=lambda line: print(line, file=sys.stderr, flush=True), init_layers=init_layers
    )
    metrics = {**result.history[-1], "train_wall_s": round(time.perf_counter() - started, 1)}
    out = export(result, Path(args.out), config, metrics, None if args.no_refine else DEFAULT_REFINE)
    summary = ", ".join(f"stage {s}: {metrics[f's{s}_median_loss']:.3f}" for s in config.stages)
    print(f"wrote {out} ({result.pairs} pairs; validation median loss {summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
