"""Fixture for the Pure Data tests: `run_pd` starts a headless `pd` that is always killed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.patches.pd_harness import PdProcess


@pytest.fixture
def run_pd(tmp_path: Path) -> Iterator[Callable[..., PdProcess]]:
    """`run_pd({"name.pd": text, ...}, sends=[...])` writes the patches and starts pd; always killed."""
    started: list[PdProcess] = []

    def start(patches: dict[str, str], sends: list[str] | None = None) -> PdProcess:
        paths = []
        for name, text in patches.items():
            path = tmp_path / name
            path.write_text(text, encoding="utf-8")
            paths.append(path)
        process = PdProcess(paths, sends or [], tmp_path / f"pd-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
