"""features.names: SPEC order, groups, expansion."""

from __future__ import annotations

import pytest

from features.names import DESCRIPTOR_NAMES, GROUPS, expand, indices_of


def test_spec_order_and_count() -> None:
    assert DESCRIPTOR_NAMES[:3] == ("loudness_db", "rms_db", "peak_db")
    assert DESCRIPTOR_NAMES[3:10] == ("centroid", "spread", "skewness", "kurtosis", "rolloff", "flatness", "crest")
    assert DESCRIPTOR_NAMES[10] == "mfcc_0" and DESCRIPTOR_NAMES[22] == "mfcc_12"
    assert DESCRIPTOR_NAMES[23] == "chroma_A" and DESCRIPTOR_NAMES[34] == "chroma_G#"
    assert DESCRIPTOR_NAMES[-2:] == ("pitch_hz", "pitch_confidence")
    assert len(DESCRIPTOR_NAMES) == 37 == len(set(DESCRIPTOR_NAMES))
    assert list(GROUPS) == ["loudness", "specshape", "mfcc", "chroma", "pitch"]


def test_expand_groups_and_names_in_spec_order() -> None:
    assert expand(["pitch", "centroid", "loudness"]) == (
        "loudness_db",
        "rms_db",
        "peak_db",
        "centroid",
        "pitch_hz",
        "pitch_confidence",
    )
    assert expand("mfcc") == tuple(f"mfcc_{i}" for i in range(13))
    assert expand(["centroid", "specshape"]) == GROUPS["specshape"]  # duplicates dropped
    assert indices_of(["pitch_confidence", "loudness_db"]) == (0, 36)


def test_unknown_name_is_named() -> None:
    with pytest.raises(ValueError, match="unknown descriptor or group 'brightness'"):
        expand(["centroid", "brightness"])
