"""CMA-ES (the `cma` package) on the stage's parameters, one strategy per target.

Input: a `MatchProblem` and a render budget per target (50 and 2,000 in the benchmarks). Output:
`BaselineResult`; its trajectories (best-so-far vector after each generation) feed the
behaviour-cloning warm start. All targets' populations of a generation are rendered together.
Each strategy starts at the environment's start vector (the neutral patch), sigma0 = 0.25, bounds
[0, 1], the default population size (4 + 3 ln n).
"""

from __future__ import annotations

import warnings

import cma
import numpy as np
from tqdm import tqdm

from agents.baselines.common import BaselineResult, MatchProblem, Tracker

SIGMA0 = 0.25


def cmaes(problem: MatchProblem, budget: int, seed: int = 0, progress: bool = False) -> BaselineResult:
    if budget <= 0:
        raise ValueError(f"the render budget must be > 0, got {budget}")
    tracker = Tracker(problem)
    strategies = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cma warns about tiny budgets
        for p in range(problem.n_targets):
            x0 = problem.starts[p, problem.active_idx].astype(np.float64)
            options = {"bounds": [0.0, 1.0], "seed": seed + p + 1, "verbose": -9, "maxfevals": budget}
            strategies.append(cma.CMAEvolutionStrategy(list(x0), SIGMA0, options))
    spent = np.zeros(problem.n_targets, dtype=np.int64)
    bar = tqdm(total=budget * problem.n_targets, unit="render", desc="cmaes", disable=not progress)
    while True:
        live = [p for p in range(problem.n_targets) if spent[p] < budget]
        if not live:
            break
        rows_list, cand_list, asked = [], [], []
        for p in live:
            pop = np.asarray(strategies[p].ask(), dtype=np.float64)
            pop = pop[: budget - spent[p]]
            asked.append((p, pop))
            rows_list.append(np.full(len(pop), p))
            cand_list.append(problem.full_vectors(np.full(len(pop), p), pop))
        rows = np.concatenate(rows_list)
        candidates = np.concatenate(cand_list)
        losses = problem.evaluate(rows, candidates)
        tracker.record(rows, candidates, losses)
        offset = 0
        for p, pop in asked:
            fitness = losses[offset : offset + len(pop)]
            offset += len(pop)
            spent[p] += len(pop)
            es = strategies[p]
            if len(pop) == es.popsize:
                es.tell(list(pop), list(fitness))
            else:
                spent[p] = budget  # a partial last generation ends this target's budget
        tracker.snapshot(np.array(live))
        bar.update(len(rows))
    bar.close()
    return tracker.result()
