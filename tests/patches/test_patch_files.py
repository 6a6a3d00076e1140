"""The committed patches against the parameter table: receive names in wire order and nothing extra,
vanilla objects only, valid Max JSON, the table's mappings, and an idempotent, up-to-date generator."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from patches import generate
from patches.pd_layout import box_size
from patches.pd_writer import Box, read_boxes, read_canvases
from patches.serumlite_pd import phys_expr
from server.config import OscSettings
from server.osc_protocol import PD_FEATURE_NAMES
from settings.loader import load_settings
from synth.params import PARAM_NAMES, PARAMS

PATCHES = Path(generate.__file__).resolve().parent
VANILLA = {  # Pd 0.53 core objects used by the patches, plus bob~ and sigmund~ from vanilla's extra/
    "netreceive", "netsend", "oscparse", "oscformat", "list", "route", "unpack", "pack", "s", "r", "t", "f",
    "sel", "expr", "expr~", "loadbang", "vline~", "osc~", "phasor~", "noise~", "*~", "bob~", "clip~", "dac~",
    "env~", "-", "*", "adc~", "hip~", "rzero~", "sigmund~", "del", "samplerate~", "tgl", "bng", "hsl", "s~", "pd",
    "line~",
}  # fmt: skip
EXTRA_SENDS = {"sl-note", "sl-gate", "sl-out-db"}


def boxes_of(name: str):
    return read_boxes((PATCHES / name).read_text(encoding="utf-8"))


def test_committed_patches_are_up_to_date() -> None:
    assert generate.stale_files(load_settings().osc, PATCHES) == [], "run: python patches/generate.py"


def test_generator_is_idempotent(tmp_path: Path) -> None:
    assert generate.render_all(OscSettings()) == generate.render_all(OscSettings())
    assert generate.main(["--out", str(tmp_path)]) == 0
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert generate.main(["--out", str(tmp_path)]) == 0
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first
    assert set(first) == {"serumlite.pd", "serumlite_features.pd", "serumlite.maxpat"}
    assert generate.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "serumlite.pd").write_text("#N canvas 0 0 10 10 12;\n")
    assert generate.main(["--check", "--out", str(tmp_path)]) == 1


def test_generator_cli_help_and_bad_settings(tmp_path: Path) -> None:
    script = str(PATCHES / "generate.py")
    ok = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "--check" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("osc:\n  send_port: not-a-port\n")
    run = subprocess.run([sys.executable, script, "--settings", str(bad)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1 and "send_port" in run.stderr


def test_ports_follow_the_settings() -> None:
    files = generate.render_all(OscSettings(listen_host="0.0.0.0", listen_port=9100, send_port=9101))
    assert "netreceive -u -b 9101" in files["serumlite.pd"] and "connect 127.0.0.1 9100" in files["serumlite.pd"]
    assert "connect 127.0.0.1 9100" in files["serumlite_features.pd"]
    assert "udpreceive 9101" in files["serumlite.maxpat"] and "udpsend 127.0.0.1 9100" in files["serumlite.maxpat"]


def test_wekinator_settings_generate_wekinator_patches() -> None:
    files = generate.render_all(OscSettings(format="wekinator", wekinator_out_port=12001, wekinator_in_port=6449))
    assert "netreceive -u -b 12001" in files["serumlite.pd"] and "route outputs" in files["serumlite.pd"]
    assert "oscformat wek inputs" in files["serumlite_features.pd"]
    assert "connect 127.0.0.1 6449" in files["serumlite_features.pd"]
    assert "udpreceive 12001" in files["serumlite.maxpat"] and "route /wek/outputs" in files["serumlite.maxpat"]
    native = generate.render_all(OscSettings())
    assert "wek" not in native["serumlite.pd"] + native["serumlite_features.pd"] + native["serumlite.maxpat"]


def test_serumlite_pd_matches_the_table() -> None:
    canvases = read_canvases((PATCHES / "serumlite.pd").read_text(encoding="utf-8"))
    assert len(canvases) == 2  # the main canvas and [pd voice]
    everywhere = [b for boxes, _ in canvases for b in boxes if b.kind == "obj"]
    assert {b.class_name for b in everywhere} <= VANILLA, {b.class_name for b in everywhere} - VANILLA
    boxes, connections = canvases[0]
    objects = [b for b in boxes if b.kind == "obj"]
    assert any(b.atoms == ("pd", "voice") for b in objects)
    sends = [b.atoms[1] for b in objects if b.class_name == "s"]
    assert [s.removeprefix("sl-") for s in sends if s not in EXTRA_SENDS] == list(PARAM_NAMES)
    assert set(sends) - set(f"sl-{n}" for n in PARAM_NAMES) == {"sl-note", "sl-gate"}
    assert [b.atoms[1] for b in everywhere if b.class_name == "s"] == [*sends, "sl-out-db"]  # the voice's meter
    route = next(b for b in objects if b.class_name == "route" and b.atoms[1] == "params")
    assert list(route.atoms[1:]) == ["params", "note", "gate", *PARAM_NAMES]
    unpack = next(b for b in objects if b.class_name == "unpack")
    assert list(unpack.atoms[1:]) == ["f"] * len(PARAMS)
    # unpack outlet i and route outlet 3+i both feed [s sl-<name i>]
    index_of = {b.atoms[1]: b.index for b in objects if b.class_name == "s"}
    for spec in PARAMS:
        assert (unpack.index, spec.index, index_of[spec.pd_receive], 0) in connections
        assert (route.index, 3 + spec.index, index_of[spec.pd_receive], 0) in connections
    # the voice listens to every parameter exactly once, and to nothing outside the table
    voice = [b for b in canvases[1][0] if b.kind == "obj"]
    receives = [b.atoms[1] for b in everywhere if b.class_name == "r"]
    assert receives == [b.atoms[1] for b in voice if b.class_name == "r"]  # only the voice listens
    assert sorted(r for r in receives if r not in EXTRA_SENDS) == sorted(spec.pd_receive for spec in PARAMS)
    assert {"netreceive", "oscparse", "oscformat", "netsend", "tgl"} <= {b.class_name for b in objects}
    assert {"dac~", "vline~", "bob~", "phasor~", "noise~", "s~"} <= {b.class_name for b in voice}


def test_read_canvases_nesting() -> None:
    text = "#N canvas 0 0 9 9 12;\n#X obj 1 1 f;\n#N canvas 0 0 9 9 sub 0;\n#X obj 1 1 t b;\n#X obj 1 1 f;\n"
    text += "#X connect 0 0 1 0;\n#X restore 5 5 pd sub;\n#X connect 0 0 1 0;\n"
    (top, top_links), (sub, sub_links) = read_canvases(text)
    assert [b.atoms for b in top] == [("f",), ("pd", "sub")] and top_links == [(0, 0, 1, 0)]
    assert [b.class_name for b in sub] == ["t", "f"] and sub_links == [(0, 0, 1, 0)]


def test_features_patch_is_vanilla_and_sends_k_floats() -> None:
    boxes, _ = boxes_of("serumlite_features.pd")
    objects = [b for b in boxes if b.kind == "obj"]
    assert {b.class_name for b in objects} <= VANILLA
    assert any(b.atoms == ("oscformat", "agent", "features") for b in objects)
    pack = next(b for b in objects if b.class_name == "pack")
    assert list(pack.atoms[1:]) == ["f"] * len(PD_FEATURE_NAMES)
    labels = [b.atoms[4] for b in boxes if b.kind == "floatatom" and b.atoms[4] in PD_FEATURE_NAMES]
    assert labels == list(PD_FEATURE_NAMES)


def test_maxpat_is_a_valid_patcher_matching_the_table() -> None:
    patcher = json.loads((PATCHES / "serumlite.maxpat").read_text(encoding="utf-8"))["patcher"]
    boxes = {b["box"]["id"]: b["box"] for b in patcher["boxes"]}
    assert len(boxes) == len(patcher["boxes"])
    for line in patcher["lines"]:
        (source, outlet), (sink, inlet) = line["patchline"]["source"], line["patchline"]["destination"]
        assert outlet < boxes[source]["numoutlets"] and inlet < boxes[sink]["numinlets"], line
    texts = [b.get("text", "") for b in boxes.values() if b["maxclass"] == "newobj"]
    sends = [t.split()[1] for t in texts if t.startswith("s ")]
    assert [s for s in sends if s not in EXTRA_SENDS] == [spec.pd_receive for spec in PARAMS]
    assert "udpreceive 9001" in texts and "udpsend 127.0.0.1 9000" in texts
    assert all(t.count(",") == t.count("\\,") for t in texts)  # Max saves commas in boxes as \,
    receives = {t.split()[1] for t in texts if t.startswith("r ")}
    assert receives - EXTRA_SENDS <= {spec.pd_receive for spec in PARAMS}


@pytest.mark.parametrize("spec", PARAMS, ids=lambda s: s.name)
def test_pd_mappings_follow_the_table(spec) -> None:
    functions = {"pow": math.pow, "min": min, "max": max, "int": int}
    for x in (0.0, 0.1, 0.37, 0.5, 0.9, 1.0):
        value = eval(phys_expr(spec).replace("$f1", repr(x)), {"__builtins__": {}}, functions)
        assert value == pytest.approx(spec.to_value(x), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("name", ["serumlite.pd", "serumlite_features.pd"])
def test_no_two_boxes_overlap(name: str) -> None:
    for boxes, _ in read_canvases((PATCHES / name).read_text(encoding="utf-8")):
        rects = [(b.x, b.y, *box_size(Box(b.kind, b.x, b.y, " ".join(b.atoms)))) for b in boxes]
        for i, (x1, y1, w1, h1) in enumerate(rects):
            for j, (x2, y2, w2, h2) in enumerate(rects[i + 1 :], start=i + 1):
                overlap = x1 < x2 + w2 and x2 < x1 + w1 and y1 < y2 + h2 and y2 < y1 + h1
                assert not overlap, (boxes[i].atoms[:3], boxes[j].atoms[:3])
