"""A minimal Pure Data patch writer and reader (vanilla file format, Pd 0.51+).

Input: boxes and connections added through `PdPatch` methods (placed by `pd_layout.arrange`).
Output: the `.pd` text (`PdPatch.render()`), deterministic so that regenerating gives identical
files. `read_boxes(text)` parses a `.pd` file back into (kind, atoms) boxes and connections, for
the tests that check patches against the parameter table.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

FONT_SIZE = 12
# iemgui boxes: ... SEND RECEIVE LABEL ...; "empty" means none. A receive name lets a message
# (or `pd -send "name value"`) press the widget.
TOGGLE = "tgl 19 0 empty {receive} {label} 22 9 0 12 #dfdfdf #000000 #000000 0 1"
BANG = "bng 19 250 50 0 empty {receive} {label} 22 9 0 12 #dfdfdf #000000 #000000"
HSLIDER = "hsl 128 19 0 1 0 0 empty {receive} {label} 0 -10 0 12 #dfdfdf #000000 #000000 0 1"


def escape(text: str) -> str:
    """Pd file escaping: commas and semicolons become separate `\\,` / `\\;` atoms, `$n` -> `\\$n`."""
    text = text.replace(",", " \\, ").replace(";", " \\; ")
    text = re.sub(r"(?<!\\)\$(\d)", r"\\$\1", text)
    return " ".join(text.split())


@dataclass
class Box:
    """One box as written: `#X <kind> <x> <y> <body>;` (`body` already escaped), or a subpatch
    (`child` set): the child canvas, then `#X restore <x> <y> pd <body>;`."""

    kind: str  # obj, msg, text, floatatom
    x: int
    y: int
    body: str
    child: PdPatch | None = None


@dataclass
class PdPatch:
    """One canvas. Methods return the box index (Pd numbers boxes in creation order). Boxes start
    at (0, 0): `patches.pd_layout.arrange` places them."""

    width: int = 1000
    height: int = 700
    boxes: list[Box] = field(default_factory=list)
    connections: list[tuple[int, int, int, int]] = field(default_factory=list)

    @property
    def n_boxes(self) -> int:
        return len(self.boxes)

    def _box(self, kind: str, body: str) -> int:
        self.boxes.append(Box(kind, 0, 0, body))
        return len(self.boxes) - 1

    def obj(self, text: str) -> int:
        """An object box, e.g. `obj("netreceive -u -b 9001")`."""
        return self._box("obj", escape(text))

    def msg(self, text: str) -> int:
        """A message box; `$1` and commas are escaped for the file."""
        return self._box("msg", escape(text))

    def text(self, text: str) -> int:
        """A comment."""
        return self._box("text", escape(text))

    def floatatom(self, label: str = "-", receive: str = "-", send: str = "-", width: int = 6) -> int:
        """A number box; its label (if any) sits to its right."""
        return self._box("floatatom", f"{width} 0 0 1 {label} {receive} {send} 0")

    def toggle(self, label: str, receive: str = "empty") -> int:
        return self._box("obj", TOGGLE.format(label=label, receive=receive))

    def bang(self, label: str, receive: str = "empty") -> int:
        return self._box("obj", BANG.format(label=label, receive=receive))

    def hslider(self, label: str, receive: str = "empty") -> int:
        return self._box("obj", HSLIDER.format(label=label, receive=receive))

    def subpatch(self, name: str, child: PdPatch) -> int:
        """A `[pd name]` box holding `child` (its own canvas, box numbering and connections)."""
        self.boxes.append(Box("obj", 0, 0, f"pd {escape(name)}", child))
        return len(self.boxes) - 1

    def connect(self, source: int, outlet: int, sink: int, inlet: int) -> None:
        for box in (source, sink):
            if not 0 <= box < self.n_boxes:
                raise ValueError(f"connect: no box {box} (patch has {self.n_boxes})")
        self.connections.append((source, outlet, sink, inlet))

    def chain(self, *boxes: int) -> None:
        """Connect outlet 0 of each box to inlet 0 of the next."""
        for source, sink in itertools.pairwise(boxes):
            self.connect(source, 0, sink, 0)

    def render(self) -> str:
        return "\n".join(self._lines(f"#N canvas 0 50 {self.width} {self.height} {FONT_SIZE};")) + "\n"

    def _lines(self, head: str) -> list[str]:
        lines = [head]
        for b in self.boxes:
            if b.child is None:
                lines.append(f"#X {b.kind} {b.x} {b.y} {b.body};")
                continue
            name = b.body.removeprefix("pd ")
            lines += b.child._lines(f"#N canvas 40 80 {b.child.width} {b.child.height} {name} 0;")
            lines.append(f"#X restore {b.x} {b.y} {b.body};")
        lines += [f"#X connect {a} {o} {b} {i};" for a, o, b, i in self.connections]
        return lines


@dataclass(frozen=True)
class PdBox:
    index: int
    kind: str  # obj, msg, text, floatatom
    atoms: tuple[str, ...]  # after the coordinates; for obj: class name then arguments
    x: int = 0
    y: int = 0

    @property
    def class_name(self) -> str:
        return self.atoms[0] if self.kind == "obj" and self.atoms else ""


Canvas = tuple[list[PdBox], list[tuple[int, int, int, int]]]


def read_canvases(text: str) -> list[Canvas]:
    """Every canvas of a `.pd` file (top level first, then subpatches in file order), each with its
    boxes (a subpatch shows in its parent as an `obj` box `pd <name>`) and its connections."""
    done: list[tuple[int, Canvas]] = []
    stack: list[tuple[int, Canvas]] = []
    for record in re.split(r"(?<!\\);\s*\n", text):
        atoms = record.split()
        if len(atoms) >= 2 and atoms[:2] == ["#N", "canvas"]:
            stack.append((len(done) + len(stack), ([], [])))
            continue
        if len(atoms) < 2 or atoms[0] != "#X" or not stack:
            continue
        boxes, connections = stack[-1][1]
        kind = atoms[1]
        if kind == "connect":
            a, o, b, i = (int(v) for v in atoms[2:6])
            connections.append((a, o, b, i))
        elif kind == "restore":
            done.append(stack.pop())
            parent_boxes = stack[-1][1][0]
            parent_boxes.append(PdBox(len(parent_boxes), "obj", tuple(atoms[4:]), int(atoms[2]), int(atoms[3])))
        elif kind in ("obj", "msg", "text", "floatatom", "symbolatom", "listbox"):
            boxes.append(PdBox(len(boxes), kind, tuple(atoms[4:]), int(atoms[2]), int(atoms[3])))
    done += stack
    return [canvas for _, canvas in sorted(done, key=lambda item: item[0])]


def read_boxes(text: str) -> Canvas:
    """The top-level canvas of a `.pd` file: its boxes and connections."""
    return read_canvases(text)[0]
