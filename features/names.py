"""Descriptor names and groups (SPEC order): the one list every stage indexes by.

Input: names or group names as users write them in settings (`features_keep`, `features_reward`).
Output: `DESCRIPTOR_NAMES` (the column order of every descriptor array), `GROUPS`, `expand()`.
"""

from __future__ import annotations

from collections.abc import Iterable

PITCH_CLASSES: tuple[str, ...] = ("A", "A#", "B", "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#")
N_MFCC = 13

GROUPS: dict[str, tuple[str, ...]] = {
    "loudness": ("loudness_db", "rms_db", "peak_db"),
    "specshape": ("centroid", "spread", "skewness", "kurtosis", "rolloff", "flatness", "crest"),
    "mfcc": tuple(f"mfcc_{i}" for i in range(N_MFCC)),
    "chroma": tuple(f"chroma_{p}" for p in PITCH_CLASSES),
    "pitch": ("pitch_hz", "pitch_confidence"),
}

DESCRIPTOR_NAMES: tuple[str, ...] = tuple(name for group in GROUPS.values() for name in group)
N_DESCRIPTORS = len(DESCRIPTOR_NAMES)
INDEX: dict[str, int] = {name: i for i, name in enumerate(DESCRIPTOR_NAMES)}

UNITS: dict[str, str] = (
    {
        "loudness_db": "LUFS (dB)",
        "rms_db": "dBFS",
        "peak_db": "dBFS",
        "centroid": "Hz",
        "spread": "Hz",
        "skewness": "",
        "kurtosis": "",
        "rolloff": "Hz",
        "flatness": "dB",
        "crest": "dB",
        "pitch_hz": "Hz",
        "pitch_confidence": "0..1",
    }
    | {f"mfcc_{i}": "dB (cepstral)" for i in range(N_MFCC)}
    | {f"chroma_{p}": "0..1" for p in PITCH_CLASSES}
)


def expand(names_or_groups: str | Iterable[str]) -> tuple[str, ...]:
    """Expand group names to their descriptors; keep SPEC order, drop duplicates.

    `expand(["loudness", "centroid"])` -> `("loudness_db", "rms_db", "peak_db", "centroid")`.
    Raises `ValueError` naming the unknown entry.
    """
    items = [names_or_groups] if isinstance(names_or_groups, str) else list(names_or_groups)
    wanted: set[str] = set()
    for item in items:
        if item in GROUPS:
            wanted.update(GROUPS[item])
        elif item in INDEX:
            wanted.add(item)
        else:
            raise ValueError(
                f"unknown descriptor or group '{item}' (groups: {', '.join(GROUPS)}; names: see features.names)"
            )
    return tuple(name for name in DESCRIPTOR_NAMES if name in wanted)


def indices_of(names_or_groups: str | Iterable[str]) -> tuple[int, ...]:
    """Column indices into `DESCRIPTOR_NAMES` of the expanded names, in SPEC order."""
    return tuple(INDEX[name] for name in expand(names_or_groups))
