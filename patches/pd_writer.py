"""A minimal Pure Data patch writer and reader (vanilla file format, Pd 0.51+).

Input: boxes and connections added through `PdPatch` methods (coordinates in pixels).
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
class PdPatch:
    """One canvas. Methods return the box index (Pd numbers boxes in creation order)."""

    width: int = 1000
    height: int = 700
    lines: list[str] = field(default_factory=list)
    connections: list[tuple[int, int, int, int]] = field(default_factory=list)
    n_boxes: int = 0

    def _box(self, line: str) -> int:
        self.lines.append(line)
        self.n_boxes += 1
        return self.n_boxes - 1

    def obj(self, x: int, y: int, text: str) -> int:
        """An object box, e.g. `obj(10, 10, "netreceive -u -b 9001")`."""
        return self._box(f"#X obj {x} {y} {escape(text)};")

    def msg(self, x: int, y: int, text: str) -> int:
        """A message box; `$1` and commas are escaped for the file."""
        return self._box(f"#X msg {x} {y} {escape(text)};")

    def text(self, x: int, y: int, text: str, width_chars: int = 0) -> int:
        """A comment; `width_chars` > 0 wraps it at that many characters."""
        suffix = f" \\, f {width_chars}" if width_chars else ""
        return self._box(f"#X text {x} {y} {escape(text)}{suffix};")

    def floatatom(self, x: int, y: int, label: str = "-", receive: str = "-", send: str = "-", width: int = 6) -> int:
        return self._box(f"#X floatatom {x} {y} {width} 0 0 0 {label} {receive} {send} 0;")

    def toggle(self, x: int, y: int, label: str, receive: str = "empty") -> int:
        return self._box(f"#X obj {x} {y} {TOGGLE.format(label=label, receive=receive)};")

    def bang(self, x: int, y: int, label: str, receive: str = "empty") -> int:
        return self._box(f"#X obj {x} {y} {BANG.format(label=label, receive=receive)};")

    def hslider(self, x: int, y: int, label: str, receive: str = "empty") -> int:
        return self._box(f"#X obj {x} {y} {HSLIDER.format(label=label, receive=receive)};")

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
        head = f"#N canvas 0 50 {self.width} {self.height} {FONT_SIZE};"
        body = [head, *self.lines]
        body += [f"#X connect {a} {o} {b} {i};" for a, o, b, i in self.connections]
        return "\n".join(body) + "\n"


@dataclass(frozen=True)
class PdBox:
    index: int
    kind: str  # obj, msg, text, floatatom
    atoms: tuple[str, ...]  # for obj: class name then arguments

    @property
    def class_name(self) -> str:
        return self.atoms[0] if self.kind == "obj" and self.atoms else ""


def read_boxes(text: str) -> tuple[list[PdBox], list[tuple[int, int, int, int]]]:
    """Top-level boxes and connections of a `.pd` file (subpatches are not used by our patches)."""
    boxes: list[PdBox] = []
    connections: list[tuple[int, int, int, int]] = []
    for record in re.split(r"(?<!\\);\s*\n", text):
        atoms = record.split()
        if len(atoms) < 2 or atoms[0] != "#X":
            continue
        kind = atoms[1]
        if kind == "connect":
            a, o, b, i = (int(v) for v in atoms[2:6])
            connections.append((a, o, b, i))
        elif kind in ("obj", "msg", "text", "floatatom", "symbolatom", "listbox"):
            payload = tuple(atoms[4:]) if kind != "floatatom" else tuple(atoms[2:])
            boxes.append(PdBox(len(boxes), kind, payload))
    return boxes, connections
