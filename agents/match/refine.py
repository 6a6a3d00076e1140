"""The hybrid matching agent: the trained policy steers, then gradient descent refines.

Input: a batch policy, target presets `[P, 24]`, a stage, a step budget, and a `RefineConfig` (read
from the `refine` section of the model's `model.yaml`). Output: a `RolloutResult` over the whole
budget, as `agents.match.rollout` returns for a policy alone.

The policy takes the first `policy_steps` steps of each episode (one render each, as in the
environment); it brings a neutral patch near the target within ~10 steps but then orbits it
(its regression error is ~0.05 in normalized units, where the loss is steep). The remaining
`budget - policy_steps` steps run Adam through the differentiable synth and loss from the
policy's patch (one render with its backward pass per step, as the gradient baseline counts them:
`agents.baselines.gradient`, here with a cosine-decayed learning rate). Episodes that reached
epsilon under the policy end there. The agent's result is its best patch of the episode.

With `proxy_starts` k > 0, Adam also races k other starts: the policy's patch with its oscillator
section replaced by the settings the neural proxy (`proxy_dir`) finds nearest the target among
`proxy_candidates` random ones (`agents.match.proxy_starts`; no renders). Each start runs
`race_steps` steps, then the best continues alone; only at the curriculum stages listed in
`proxy_stages`. With `wave_net_dir`, one more start races at the stages in `wave_net_stages`: the
policy's patch with both oscillator waves set to what the wave net (`agents.match.wave_net`, an
inverse model on the probe's spectrum) hears in the target; it resolves the wave basins that the
proxy's forward search misses once the filter moves. Budgets too short for the race
(`(starts + 1) * race_steps >= budget - policy_steps`) refine from the policy's patch alone.

With `lm_below`, a target whose best loss falls under it takes Levenberg-Marquardt steps instead of
Adam's (`agents.baselines.levenberg`: a Gauss-Newton model of the loss's STFT term, one render a
step as before): Adam orbits a solved target at ~0.01, these steps bring it to ~1e-6.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines.common import CHUNK_ROWS, MatchProblem
from agents.baselines.gradient import AdamSchedule, gradient_descent
from agents.baselines.levenberg import LevenbergMarquardt
from agents.match.curriculum import N_STAGES
from agents.match.probe import Hearing, Renderer
from agents.match.rollout import Policy, RolloutResult, rollout
from settings.loader import Settings

REFINE_KINDS = ("gradient",)


class RefineError(ValueError):
    """A bad `refine` section in a model.yaml (one line, names the file and the key)."""


@dataclass(frozen=True)
class RefineConfig:
    kind: str = "gradient"
    policy_steps: int = 10  # steps the policy takes before the refinement
    lr: float = 0.3  # Adam's first learning rate (logit units), cosine-decayed ...
    lr_floor: float = 0.05  # ... to lr * lr_floor at the last step
    beta1: float = 0.8
    proxy_starts: int = 0  # extra starts from the neural proxy (0: refine the policy's patch alone)
    proxy_dir: str | None = None  # the proxy's folder (model.yaml: relative to the model directory)
    proxy_candidates: int = 8192  # random oscillator settings the proxy ranks per target
    race_steps: int = 8  # Adam steps each start runs before the best one continues
    proxy_stages: tuple[int, ...] = (1, 2, 3, 4, 5)  # curriculum stages at which the proxy's starts race
    wave_net_dir: str | None = None  # a wave net's folder (`agents.match.wave_net`): one more start
    wave_net_stages: tuple[int, ...] = (1, 2, 3)  # curriculum stages at which the wave net's start races
    lm_below: float | None = None  # a target's best loss under this: Levenberg-Marquardt steps (None: Adam only)
    lm_lambda0: float = 0.01  # their first damping
    lm_max_step: float = 2.0  # their largest step (logit units)

    @property
    def lm(self) -> LevenbergMarquardt | None:
        if self.lm_below is None:
            return None
        return LevenbergMarquardt(below=self.lm_below, lambda0=self.lm_lambda0, max_step=self.lm_max_step)

    @property
    def schedule(self) -> AdamSchedule:
        return AdamSchedule(lr=self.lr, lr_floor=self.lr_floor, beta1=self.beta1)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["proxy_stages"] = list(self.proxy_stages)  # YAML / JSON lists
        out["wave_net_stages"] = list(self.wave_net_stages)
        return out

    def extra_starts(self, stage: int) -> int:
        """How many starts race the policy's patch at `stage`."""
        proxy = self.proxy_starts if stage in self.proxy_stages else 0
        return proxy + int(self.wave_net_dir is not None and stage in self.wave_net_stages)


DEFAULT_REFINE = RefineConfig()  # what `agents.match.dagger` writes into the models it trains


def refine_config(section: Any, path: str | Path) -> RefineConfig | None:
    """A model.yaml's `refine` section -> `RefineConfig` (None when absent or null)."""
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise RefineError(f"{path}: 'refine' must be a mapping, got {type(section).__name__}")
    known = [f.name for f in fields(RefineConfig)]
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise RefineError(
            f"{path}: unknown key(s) in 'refine': {', '.join(map(str, unknown))} (known: {', '.join(known)})"
        )
    kind = section.get("kind", "gradient")
    if kind not in REFINE_KINDS:
        raise RefineError(f"{path}: refine.kind '{kind}' is not one of {', '.join(REFINE_KINDS)}")
    counts: dict[str, int] = {}
    for key, least in (("policy_steps", 1), ("proxy_starts", 0), ("proxy_candidates", 1), ("race_steps", 1)):
        value = section.get(key, getattr(RefineConfig, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise RefineError(f"{path}: refine.{key} must be an integer >= {least}, got {value!r}")
        counts[key] = value
    if counts["proxy_starts"] > counts["proxy_candidates"]:
        raise RefineError(f"{path}: refine.proxy_starts ({counts['proxy_starts']}) exceeds proxy_candidates")
    stages = _stage_list(section, "proxy_stages", path)
    wave_net_dir, wave_net_stages = _wave_net(section, path)
    proxy_dir = section.get("proxy_dir")
    if counts["proxy_starts"] > 0:
        if not isinstance(proxy_dir, str) or not proxy_dir:
            raise RefineError(
                f"{path}: refine.proxy_starts > 0 needs refine.proxy_dir (a proxy folder), got {proxy_dir!r}"
            )
        folder = Path(path).parent / proxy_dir
        if not folder.is_dir():
            raise RefineError(f"{path}: refine.proxy_dir '{proxy_dir}' is not a folder (looked at {folder})")
        proxy_dir = str(folder)
    numbers: dict[str, float] = {}
    for key in ("lr", "lr_floor", "beta1"):
        value = section.get(key, getattr(RefineConfig, key))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RefineError(f"{path}: refine.{key} must be a number, got {value!r}")
        numbers[key] = float(value)
    try:
        AdamSchedule(**numbers)
    except ValueError as exc:
        raise RefineError(f"{path}: refine: {exc}") from exc
    lm = _levenberg(section, path)
    return RefineConfig(
        lm_below=lm.below if lm else None,
        lm_lambda0=lm.lambda0 if lm else RefineConfig.lm_lambda0,
        lm_max_step=lm.max_step if lm else RefineConfig.lm_max_step,
        kind=str(kind),
        proxy_dir=proxy_dir if counts["proxy_starts"] else None,
        proxy_stages=stages,
        wave_net_dir=wave_net_dir,
        wave_net_stages=wave_net_stages,
        **counts,
        **numbers,
    )


def _levenberg(section: Mapping[str, Any], path: str | Path) -> LevenbergMarquardt | None:
    """`refine.lm_below` / `lm_lambda0` / `lm_max_step` -> the Levenberg-Marquardt phase (None: off)."""
    values: dict[str, float] = {}
    for key in ("lm_below", "lm_lambda0", "lm_max_step"):
        value = section.get(key, getattr(RefineConfig, key))
        if value is None and key == "lm_below":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RefineError(f"{path}: refine.{key} must be a number, got {value!r}")
        values[key] = float(value)
    if "lm_below" not in values:
        return None
    try:
        return LevenbergMarquardt(
            below=values["lm_below"], lambda0=values["lm_lambda0"], max_step=values["lm_max_step"]
        )
    except ValueError as exc:
        raise RefineError(f"{path}: refine: {exc}") from exc


def _stage_list(section: Mapping[str, Any], key: str, path: str | Path) -> tuple[int, ...]:
    stages = section.get(key, list(getattr(RefineConfig, key)))
    if (
        not isinstance(stages, list)
        or not stages
        or any(isinstance(v, bool) or v not in range(1, N_STAGES + 1) for v in stages)
        or len(set(stages)) != len(stages)
    ):
        raise RefineError(f"{path}: refine.{key} must list distinct stages 1..{N_STAGES}, got {stages!r}")
    return tuple(sorted(stages))


def _wave_net(section: Mapping[str, Any], path: str | Path) -> tuple[str | None, tuple[int, ...]]:
    """`refine.wave_net_dir` (resolved against the model folder, the net read and checked) and its stages."""
    from agents.match.wave_net import WaveNetError, load_wave_net

    stages = _stage_list(section, "wave_net_stages", path)
    folder = section.get("wave_net_dir")
    if folder is None:
        return None, stages
    if not isinstance(folder, str) or not folder:
        raise RefineError(f"{path}: refine.wave_net_dir must be a folder name, got {folder!r}")
    resolved = Path(path).parent / folder
    try:
        loaded = load_wave_net(resolved)
    except WaveNetError as exc:
        raise RefineError(f"{path}: refine.wave_net_dir: {exc}") from exc
    missing = sorted(set(stages) - set(loaded.stages))
    if missing:
        raise RefineError(
            f"{path}: refine.wave_net_stages {list(stages)} include stage(s) {missing} the wave net was not "
            f"trained for (its stages: {list(loaded.stages)})"
        )
    return str(resolved), stages


def hybrid_rollout(
    policy: Policy,
    targets_0to1: np.ndarray,
    settings: Settings,
    stage: int,
    budget: int,
    config: RefineConfig | None,
    *,
    renderer: Renderer,
    hearing: Hearing,
    keep_trajectories: int = 3,
    seed: int = 0,
    progress: bool = False,
) -> RolloutResult:
    """The policy for `min(policy_steps, budget)` steps, then the refinement for the rest (config
    None: the policy for the whole budget, as `rollout`)."""
    if budget <= 0:
        raise ValueError(f"the step budget must be > 0, got {budget}")
    policy_steps = budget if config is None else min(config.policy_steps, budget)
    first = rollout(
        policy,
        targets_0to1,
        settings,
        stage,
        policy_steps,
        renderer=renderer,
        hearing=hearing,
        keep_trajectories=keep_trajectories,
        progress=progress,
    )
    rest = budget - policy_steps
    open_rows = np.flatnonzero(~first.success)
    if config is None or rest == 0 or open_rows.size == 0:
        return first
    problem = MatchProblem(targets_0to1[open_rows], stage, renderer, hearing, settings.match.epsilon)
    problem.starts = first.final_x[open_rows].copy()  # the policy's patch (held parameters = the target's)
    extra = None
    n_extra = config.extra_starts(stage)
    if n_extra > 0 and (n_extra + 1) * config.race_steps < rest:
        extra = _race_starts(config, problem, settings, stage, seed)
    refined = gradient_descent(
        problem,
        rest,
        seed=seed,
        progress=progress,
        schedule=config.schedule,
        extra_starts=extra,
        race_steps=config.race_steps,
        lm=config.lm,
    )
    final_loss = first.final_loss.copy()
    final_x = first.final_x.copy()
    better = refined.best_loss < final_loss[open_rows]
    final_loss[open_rows[better]] = refined.best_loss[better]
    final_x[open_rows[better]] = refined.best_x[better]
    best_loss = np.minimum(first.best_loss, final_loss)
    steps = first.steps_to_eps.copy()
    reached = refined.renders_to_eps >= 0
    steps[open_rows[reached]] = policy_steps + refined.renders_to_eps[reached]
    trajectories = list(first.trajectories)
    for i, row in enumerate(open_rows[open_rows < len(trajectories)]):
        # the refinement's best-so-far patch after each step continues the policy's trajectory
        trajectories[row] = np.concatenate([trajectories[row], np.stack(refined.trajectories[i])])
    return RolloutResult(final_loss, best_loss, steps, final_x, trajectories)


def _race_starts(config: RefineConfig, problem: MatchProblem, settings: Settings, stage: int, seed: int) -> np.ndarray:
    """`[P, extra_starts(stage), 24]`: the wave net's start first, then the proxy's (the targets' probe
    audio rendered once more: what the agent heard)."""
    import torch

    with torch.no_grad():
        audio = torch.cat(
            [
                problem.renderer(torch.from_numpy(problem.targets[lo : lo + CHUNK_ROWS]))
                for lo in range(0, problem.n_targets, CHUNK_ROWS)
            ]
        )
    starts = []
    if config.wave_net_dir is not None and stage in config.wave_net_stages:
        from agents.match.wave_net import WaveNetError, load_wave_net, wave_starts

        try:
            loaded = load_wave_net(config.wave_net_dir)
        except WaveNetError as exc:
            raise RefineError(f"refine.wave_net_dir: {exc}") from exc
        if loaded.spectrum.sample_rate_hz != settings.synth.sample_rate_hz:
            raise RefineError(
                f"refine.wave_net_dir: {config.wave_net_dir} was trained on {loaded.spectrum.sample_rate_hz} Hz "
                f"probes, these are {settings.synth.sample_rate_hz} Hz"
            )
        starts.append(wave_starts(loaded, audio, problem.starts, stage))
    if config.proxy_starts > 0 and stage in config.proxy_stages:
        starts.append(_proxy_starts(config, problem, settings, seed, audio))
    return np.concatenate(starts, axis=1)


def _proxy_starts(config: RefineConfig, problem: MatchProblem, settings: Settings, seed: int, audio: Any) -> np.ndarray:
    """`[P, proxy_starts, 24]` extra starts for the problem's targets from their probe `audio`."""
    import torch

    from agents.match.proxy_starts import proxy_snapshot, proxy_starts
    from agents.proxy import Proxy, ProxyError
    from agents.proxy.error_head import load_error_head

    try:
        proxy = Proxy.load(str(config.proxy_dir))
        head = load_error_head(str(config.proxy_dir), proxy)
    except ProxyError as exc:
        raise RefineError(f"refine.proxy_dir: {exc}") from exc
    note_off_s = settings.match.probe_note_off_s or None
    descriptors = []
    with torch.no_grad():
        for lo in range(0, problem.n_targets, CHUNK_ROWS):
            chunk = audio[lo : lo + CHUNK_ROWS]
            descriptors.append(proxy_snapshot(proxy, chunk, settings.synth.sample_rate_hz, note_off_s))
    return proxy_starts(
        proxy,
        np.concatenate(descriptors),
        problem.starts,
        float(settings.synth.default_note),
        config.proxy_starts,
        config.proxy_candidates,
        np.random.default_rng([seed, 7]),
        head,
    )
