"""Automatic placement of a group of boxes so that a generated patch reads top to bottom.

Input: a `PdPatch`, the indices of one group of boxes (a section of the patch), an origin and a
maximum width. Output: new `x`/`y` for those boxes (in place) and the group's size in pixels.
A layered layout: a box sits one row below the lowest box that feeds it; within a row, boxes are
ordered by where their sources are; rows wider than `max_width_px` wrap. Box sizes are estimated
from the text for Pd's 12-point font (7 px a character, boxes wrap at 60 characters).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from patches.pd_writer import Box, PdPatch

CHAR_PX = 7
LINE_PX = 17
WRAP_CHARS = 60
GAP_X_PX = 18
GAP_Y_PX = 14


def box_size(box: Box) -> tuple[int, int]:
    """Estimated (width, height) in pixels of a box as Pd draws it, labels included."""
    atoms = box.body.split()
    if box.kind == "floatatom":  # width in characters, then the label on the right
        label = atoms[4] if atoms[4] != "-" else ""
        return CHAR_PX * int(atoms[0]) + 6 + (CHAR_PX * len(label) + 4 if label else 0), 22
    if box.kind == "obj" and atoms[0] in ("tgl", "bng"):
        return 24 + CHAR_PX * len(atoms[5 if atoms[0] == "tgl" else 7]), 22
    if box.kind == "obj" and atoms[0] == "hsl":
        return 130, 34  # the label sits above the slider
    segments = box.body.replace("\\;", ";\n").split("\n")  # Pd breaks message lines after ';'
    lines = sum(max(1, math.ceil(len(seg.strip()) / WRAP_CHARS)) for seg in segments)
    chars = min(WRAP_CHARS, max(len(seg.strip()) for seg in segments))
    return CHAR_PX * chars + 8, LINE_PX * lines + 6


def arrange(patch: PdPatch, group: Sequence[int], x0: int, y0: int, max_width_px: int = 1200) -> tuple[int, int]:
    """Lay out `group` with its top-left corner at (x0, y0); returns its (width, height)."""
    members = set(group)
    sources: dict[int, list[int]] = {i: [] for i in group}
    for a, _, b, _ in patch.connections:
        if a in members and b in members and a != b:
            sources[b].append(a)
    depth: dict[int, int] = {}

    def depth_of(i: int, seen: frozenset[int]) -> int:
        if i not in depth:
            ups = [u for u in sources[i] if u not in seen]  # a cycle is cut where it closes
            depth[i] = 1 + max((depth_of(u, seen | {i}) for u in ups), default=-1)
        return depth[i]

    for i in group:
        depth_of(i, frozenset())
    comments = [i for i in group if patch.boxes[i].kind == "text"]
    layers = [comments] if comments else []
    for d in range(max(depth.values(), default=-1) + 1):
        layers.append([i for i in group if depth[i] == d and patch.boxes[i].kind != "text"])
    center: dict[int, float] = {}
    y, width = y0, 0
    for layer in layers:
        order = sorted(layer, key=lambda i: _barycenter(i, sources, center))
        x, row_h = x0, 0
        for i in order:
            w, h = box_size(patch.boxes[i])
            if x > x0 and x + w > x0 + max_width_px:  # wrap
                y, x, row_h = y + row_h + GAP_Y_PX, x0, 0
            patch.boxes[i].x, patch.boxes[i].y = x, y
            center[i] = x + w / 2
            x += w + GAP_X_PX
            row_h = max(row_h, h)
            width = max(width, x - GAP_X_PX - x0)
        if order:
            y += row_h + GAP_Y_PX
    return width, y - y0


def _barycenter(i: int, sources: dict[int, list[int]], center: dict[int, float]) -> tuple[float, int]:
    placed = [center[u] for u in sources[i] if u in center]
    return (sum(placed) / len(placed) if placed else math.inf, i)
