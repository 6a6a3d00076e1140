"""benchmarks/xrun_reference.py: the empty JACK reference client, alone and beside a GIL-busy thread."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "xrun_reference.py"
pytestmark = pytest.mark.realtime


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(SCRIPT), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)


def test_reference_client_runs_alone_and_beside_a_gil_busy_thread() -> None:
    out = _run("--json", "--rounds", "2", "--seconds", "1")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    if result.get("xruns_skipped"):
        pytest.skip(result["xruns_skipped"])
    assert result["failed_runs"] == 0  # all four clients opened both streams and reported
    for key in ("xruns_alone", "xruns_gil"):
        assert len(result[key]) == 2 and all(isinstance(x, int) and x >= 0 for x in result[key])
        assert result[f"{key}_total"] == sum(result[key])
    assert result["rounds"] == 2 and result["seconds"] == 1.0


def test_bad_arguments_exit_2_with_one_line() -> None:
    out = _run("--rounds", "0")
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "--rounds" in out.stderr
