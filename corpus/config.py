"""The `corpus:` section of environment_settings.yaml."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CorpusSettings:
    default: str = "corpus/demo"  # corpus used when none is named
    workers: int = 0  # 0: all cores
    min_duration_s: float = 0.05  # shorter tracks are skipped with a reason
