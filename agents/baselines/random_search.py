"""Random search: `budget` uniform random candidates per target on the stage's parameters.

Input: a `MatchProblem` and a render budget per target. Output: `BaselineResult` (best candidate,
its loss, renders to epsilon). Candidates of all targets are rendered together in chunks.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from agents.baselines.common import CHUNK_ROWS, BaselineResult, MatchProblem, Tracker


def random_search(problem: MatchProblem, budget: int, seed: int = 0, progress: bool = False) -> BaselineResult:
    if budget <= 0:
        raise ValueError(f"the render budget must be > 0, got {budget}")
    rng = np.random.default_rng(seed)
    tracker = Tracker(problem)
    per_round = max(1, CHUNK_ROWS // problem.n_targets)
    done = 0
    bar = tqdm(total=budget * problem.n_targets, unit="render", desc="random", disable=not progress)
    while done < budget:
        k = min(per_round, budget - done)
        rows = np.repeat(np.arange(problem.n_targets), k)
        values = rng.random((len(rows), len(problem.active_idx)))
        candidates = problem.full_vectors(rows, values)
        tracker.record(rows, candidates, problem.evaluate(rows, candidates))
        tracker.snapshot(np.arange(problem.n_targets))
        done += k
        bar.update(len(rows))
    bar.close()
    return tracker.result()
