"""Preset-matching baselines under the environment's protocol (same targets, stages, loss).

- `random_search`: uniform random candidates on the stage's parameters;
- `cmaes`: CMA-ES (the `cma` package), one strategy per target, populations rendered together;
- `gradient`: Adam on the parameters through the differentiable synth and loss.
Each returns a `common.BaselineResult`; `BASELINES` maps the evaluation CLI's agent names to them.
"""

from __future__ import annotations

from agents.baselines.cmaes import cmaes
from agents.baselines.common import BaselineResult, MatchProblem
from agents.baselines.gradient import gradient_descent
from agents.baselines.random_search import random_search

BASELINES = {"random": random_search, "cmaes": cmaes, "gradient": gradient_descent}

__all__ = ["BASELINES", "BaselineResult", "MatchProblem", "cmaes", "gradient_descent", "random_search"]
