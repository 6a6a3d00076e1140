"""What the agent did, tick by tick, for people: a CSV and a PNG of input vs synth descriptors.

Input: per control tick (from the worker): time, the input's descriptors, the synth's own
descriptors (what the agent heard of itself), the 24 output parameters, note and gate.
Output: `Trace.write_csv(path)` (one row a tick) and `Trace.plot(path)` (a PNG: a few input
descriptors against the synth's, the note/gate and the controlled parameters over time).
Rows go into preallocated chunks, so appending in the worker does not allocate per tick.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from synth.params import N_PARAMS, PARAM_NAMES

CHUNK_ROWS = 4096
PLOT_DESCRIPTORS = ("loudness_db", "centroid", "flatness", "pitch_hz")


class Trace:
    def __init__(self, descriptor_names: Sequence[str]) -> None:
        self.names = tuple(descriptor_names)
        k = len(self.names)
        self.width = 1 + 2 * k + N_PARAMS + 2  # time | input K | synth K | params | note | gate
        self._chunks: list[np.ndarray] = [np.zeros((CHUNK_ROWS, self.width), dtype=np.float32)]
        self._row = 0
        self.rows = 0

    def append(
        self, time_s: float, inp: np.ndarray, synth: np.ndarray, params: np.ndarray, note: float, gate: float
    ) -> None:
        if self._row == CHUNK_ROWS:
            self._chunks.append(np.zeros((CHUNK_ROWS, self.width), dtype=np.float32))
            self._row = 0
        k = len(self.names)
        row = self._chunks[-1][self._row]
        row[0] = time_s
        row[1 : 1 + k] = inp
        row[1 + k : 1 + 2 * k] = synth
        row[1 + 2 * k : 1 + 2 * k + N_PARAMS] = params
        row[-2] = note
        row[-1] = gate
        self._row += 1
        self.rows += 1

    def array(self) -> np.ndarray:
        """All rows so far, `[ticks, width]` (a copy)."""
        if not self.rows:
            return np.zeros((0, self.width), dtype=np.float32)
        return np.concatenate(self._chunks)[: self.rows].copy()

    def columns(self) -> list[str]:
        return [
            "time_s",
            *(f"in_{n}" for n in self.names),
            *(f"synth_{n}" for n in self.names),
            *PARAM_NAMES,
            "note_midi",
            "gate",
        ]

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(self.columns())
            for row in self.array():
                writer.writerow([f"{v:.6g}" for v in row])
        return path

    def plot(self, path: str | Path, controlled: Sequence[str] = (), title: str = "") -> Path:
        """PNG: input vs synth descriptors (rows), note/gate, and the controlled parameters."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        data = self.array()
        t = data[:, 0]
        k = len(self.names)
        shown = [n for n in PLOT_DESCRIPTORS if n in self.names]
        fig, axes = plt.subplots(len(shown) + 2, 1, figsize=(11, 2.2 * (len(shown) + 2)), sharex=True)
        for ax, name in zip(axes, shown, strict=False):
            i = self.names.index(name)
            ax.plot(t, data[:, 1 + i], label="input", color="tab:blue", linewidth=1.0)
            ax.plot(t, data[:, 1 + k + i], label="synth", color="tab:orange", linewidth=1.0)
            ax.set_ylabel(name)
            ax.legend(loc="upper right", fontsize=8)
        ax_note = axes[len(shown)]
        ax_note.plot(t, data[:, -2], color="tab:green", linewidth=1.0, label="note (MIDI)")
        ax_gate = ax_note.twinx()
        ax_gate.fill_between(t, 0, data[:, -1], color="tab:gray", alpha=0.2, step="post", label="gate")
        ax_gate.set_ylim(0, 1.05)
        ax_note.set_ylabel("note / gate")
        ax_params = axes[-1]
        for name in controlled or PARAM_NAMES[:4]:
            j = PARAM_NAMES.index(name)
            ax_params.plot(t, data[:, 1 + 2 * k + j], linewidth=1.0, label=name)
        ax_params.set_ylim(-0.02, 1.02)
        ax_params.set_ylabel("params 0..1")
        ax_params.set_xlabel("time (s)")
        ax_params.legend(loc="upper right", fontsize=7, ncol=2)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path
