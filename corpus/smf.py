"""A tiny Standard MIDI File (format 0) writer, enough for the demo corpus.

Input: notes (start and length in beats, MIDI pitch, velocity), controller curves and a tempo.
Output: the bytes of a one-track SMF that `fluidsynth` (or any sequencer) plays.
No dependencies; no reading, only writing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

TICKS_PER_BEAT = 480
CC_VOLUME = 7
CC_EXPRESSION = 11


@dataclass(frozen=True)
class Note:
    start_beats: float
    length_beats: float
    pitch: int  # MIDI note number 0..127
    velocity: int  # 1..127


@dataclass(frozen=True)
class ControlPoint:
    time_beats: float
    controller: int  # 0..127 (7 volume, 11 expression)
    value: int  # 0..127


@dataclass
class Song:
    tempo_bpm: float
    program: int  # General MIDI program, 0-based (0 piano, 40 violin, 73 flute ...)
    notes: list[Note] = field(default_factory=list)
    controls: list[ControlPoint] = field(default_factory=list)
    channel: int = 0

    @property
    def length_beats(self) -> float:
        return max((n.start_beats + n.length_beats for n in self.notes), default=0.0)


def _vlq(value: int) -> bytes:
    """MIDI variable-length quantity (7 bits per byte, high bit = more follows)."""
    if value < 0:
        raise ValueError(f"negative delta time {value}")
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _check_7bit(name: str, value: int) -> int:
    if not 0 <= value <= 127:
        raise ValueError(f"{name} must be in 0..127, got {value}")
    return value


def song_to_smf(song: Song) -> bytes:
    """Encode a song as a format-0 SMF (one track, one channel)."""
    ch = song.channel
    if not 0 <= ch <= 15:
        raise ValueError(f"channel must be in 0..15, got {ch}")
    tempo_us = int(round(60_000_000 / song.tempo_bpm))
    # (tick, order, bytes): at equal ticks, note-offs (0) come before controls (1) and note-ons (2)
    events: list[tuple[int, int, bytes]] = [
        (0, 0, b"\xff\x51\x03" + tempo_us.to_bytes(3, "big")),
        (0, 1, bytes([0xC0 | ch, _check_7bit("program", song.program)])),
    ]
    for cp in song.controls:
        tick = int(round(cp.time_beats * TICKS_PER_BEAT))
        events.append(
            (tick, 1, bytes([0xB0 | ch, _check_7bit("controller", cp.controller), _check_7bit("value", cp.value)]))
        )
    for note in song.notes:
        on = int(round(note.start_beats * TICKS_PER_BEAT))
        off = max(on + 1, int(round((note.start_beats + note.length_beats) * TICKS_PER_BEAT)))
        pitch = _check_7bit("pitch", note.pitch)
        events.append((on, 2, bytes([0x90 | ch, pitch, max(1, _check_7bit("velocity", note.velocity))])))
        events.append((off, 0, bytes([0x80 | ch, pitch, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    body = bytearray()
    last = 0
    for tick, _, data in events:
        body += _vlq(tick - last) + data
        last = tick
    body += _vlq(TICKS_PER_BEAT) + b"\xff\x2f\x00"  # one beat of tail, then end of track
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_BEAT)
    return header + b"MTrk" + struct.pack(">I", len(body)) + bytes(body)


def write_smf(song: Song, path: Path) -> None:
    path.write_bytes(song_to_smf(song))
