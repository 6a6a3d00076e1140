"""train.py as a process: --help, bad flags, and SIGKILL in the middle of training then --resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agents.policy import load_model
from tests.agents.test_imitate_doubles import write_fake_corpus

ROOT = Path(__file__).resolve().parent.parent
# train.py with the sound double in place of render + analyze (a subprocess cannot be monkeypatched)
LAUNCH = (
    f"import sys; sys.path.insert(0, {str(ROOT)!r});"
    "import agents.imitate.train as t; from tests.agents.test_imitate_doubles import FakeDescriber;"
    "t.make_describer = lambda *a, **k: FakeDescriber();"
    "import train; sys.exit(train.main(sys.argv[1:]))"
)
FLAGS = [
    "--learning-starts", "50", "--batch-size", "16", "--net-arch", "16", "16", "--checkpoint-every", "100",
    "--eval-every", "100000", "--eval-episodes", "1", "--episode-steps", "40", "--no-progress",
]  # fmt: skip


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_help_and_bad_flags() -> None:
    assert _run("--help").returncode == 0
    bad = _run("--algorithm", "nope")
    assert bad.returncode != 0
    missing = _run("--settings", "/nonexistent.yaml")
    assert missing.returncode == 2 and "/nonexistent.yaml" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_sigkill_then_resume(tmp_path: Path) -> None:
    corpus = write_fake_corpus(tmp_path / "corpus", n_tracks=2, n_frames=80)
    out = tmp_path / "model"
    cmd = [sys.executable, "-c", LAUNCH, "--corpus", str(corpus), "--out", str(out), "--steps", "100000", *FLAGS]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while not list((out / "checkpoints").glob("step_2*.zip")):
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within 90 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "model.yaml").exists()
    steps_done = max(int(p.stem[5:]) for p in (out / "checkpoints").glob("step_*.zip") if p.stem[5:].isdigit())
    assert steps_done >= 200
    total = steps_done + 150
    resume = subprocess.run(
        [sys.executable, "-c", LAUNCH, "--corpus", str(corpus), "--out", str(out), "--steps", str(total),
         *FLAGS, "--resume"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert resume.returncode == 0, resume.stderr[-2000:]
    assert f"at step {steps_done}" in resume.stderr
    assert load_model(out).meta["training_steps"] == total
