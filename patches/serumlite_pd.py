"""Builds `patches/serumlite.pd`: OSC in -> `[s sl-<name>]` per parameter -> a Serum-lite-like voice.

Input: the parameter table (`synth.params.PARAMS`: names, ranges, curves, defaults) and ports.
Output: the patch text. Vanilla Pd only: `[netreceive -u -b] -> [oscparse] -> [route ...]` for
`/serumlite/params` (24 floats), `/serumlite/<name>`, `/serumlite/note`, `/serumlite/gate`; toggles
and buttons that send `/agent/enable`, `/agent/hold`, `/agent/reset`, `/agent/step_size`,
`/server/ping` through `[oscformat] -> [netsend -u -b]`; and the voice: two morphing oscillators
(sine -> saw -> square -> triangle, with a unison pair each), noise, `[bob~]` ladder low-pass with
the table's log cutoff and a mod envelope, amp envelope from `[vline~]`, LFO to pitch/filter/amp.
"""

from __future__ import annotations

from patches.pd_layout import arrange
from patches.pd_writer import PdPatch
from synth.params import PARAMS, ParamSpec, param

PREFIX = "sl-"
LFO_DEPTHS = "($f1==0)*2 ; ($f1==1)*2 ; ($f1==2)*0.5"  # pitch +-2 st, filter +-2 oct, amp +-50 %
RESONANCE = "4*(1 - 1/(2*{v}))"
RAMP_MS = 20  # levels, volume and cutoff glide to each control tick's value
MORPH = "$f2*cos($v1*6.283185) + $f3*(2*$v1-1) + $f4*(($v1<0.5)*2-1) + $f5*(1-4*abs($v1-0.5))"


def num(value: float) -> str:
    """A compact, stable number for expressions."""
    return f"{value:.6g}"


def phys_expr(spec: ParamSpec, var: str = "$f1") -> str:
    """The table's normalized -> physical mapping as a Pd [expr] expression (clamped, snapped)."""
    x = f"min(max({var}, 0), 1)"
    if spec.snap:
        steps = spec.n_steps - 1
        # int(v + 0.5) rounds (v >= 0); Max's expr has int() too, not every version has rint()
        return f"{num(spec.low)} + int({x}*{steps} + 0.5)*{num((spec.high - spec.low) / steps)}"
    if spec.curve == "log":
        return f"{num(spec.low)}*pow({num(spec.high / spec.low)}, {x})"
    return f"{num(spec.low)} + {x}*{num(spec.high - spec.low)}"


class Builder:
    """Helpers that keep the voice readable: receives mapped to physical values, hot/cold joins."""

    def __init__(self, patch: PdPatch) -> None:
        self.p = patch

    def physical(self, name: str, scale: str = "", template: str = "") -> int:
        """`[r sl-<name>] -> [expr <mapping>]`; `scale` (e.g. `*1000`) is appended, or `template`
        (e.g. `{v}*2 ; {v}+1` for two outlets) has `{v}` replaced by the physical value."""
        value = f"({phys_expr(param(name))})"
        receive = self.p.obj(f"r {PREFIX}{name}")
        mapped = self.p.obj("expr " + (template.format(v=value) if template else value + scale))
        self.p.connect(receive, 0, mapped, 0)
        return mapped

    def join(self, sources: list[tuple[int, int]], sink: int) -> None:
        """Feed sources into inlets 0..n of `sink`; a cold inlet's new value also re-evaluates the sink.

        Source k > 0 goes through `[t b f]`: the float to inlet k first, then a bang to inlet 0."""
        for k, (box, outlet) in enumerate(sources):
            if k == 0:
                self.p.connect(box, outlet, sink, 0)
                continue
            trigger = self.p.obj("t b f")
            self.p.connect(box, outlet, trigger, 0)
            self.p.connect(trigger, 1, sink, k)
            self.p.connect(trigger, 0, sink, 0)

    def smooth(self, source: int, outlet: int = 0) -> int:
        """A control value as a signal ramping to each new value in `RAMP_MS` (no zipper noise)."""
        ramp = self.p.obj(f"pack 0 {RAMP_MS}")
        line = self.p.obj("line~")
        self.p.connect(source, outlet, ramp, 0)
        self.p.connect(ramp, 0, line, 0)
        return line

    def envelope(self, names: tuple[str, str, str, str], gate: int) -> int:
        """ADSR `[vline~]`: gate 1 -> `1 A, S D A`; gate 0 -> `0 R` (times from the table, ms)."""
        attack, decay, sustain, release = names
        sel = self.p.obj("sel 0")
        self.p.connect(gate, 0, sel, 0)
        on = self.p.obj("pack 0 0 0 0")
        self.p.connect(sel, 1, on, 0)
        for inlet, (name, scale) in enumerate(((attack, "*1000"), (decay, "*1000"), (sustain, "")), start=1):
            self.p.connect(self.physical(name, scale), 0, on, inlet)
        off = self.p.obj("pack 0 0")
        self.p.connect(sel, 0, off, 0)
        self.p.connect(self.physical(release, "*1000"), 0, off, 1)
        attack_msg = self.p.msg("1 $2, $4 $3 $2")
        release_msg = self.p.msg("0 $2")
        line = self.p.obj("vline~")
        self.p.chain(on, attack_msg, line)
        self.p.chain(off, release_msg, line)
        return line


def osc_in(p: PdPatch, listen_port: int, wekinator_port: int | None = None) -> None:
    """`/serumlite/...` -> one `[s sl-<name>]` per parameter, in wire order, plus note and gate.
    With `wekinator_port`, `/wek/outputs` (24 f) on that port feeds the same receive names."""
    p.text(f"OSC in (port {listen_port}): /serumlite/params 24 f | /serumlite/<name> f | note f | gate f")
    receive = p.obj(f"netreceive -u -b {listen_port}")
    parse = p.obj("oscparse")
    trim = p.obj("list trim")
    top = p.obj("route serumlite" + (" wek" if wekinator_port is not None else ""))
    names = " ".join(spec.name for spec in PARAMS)
    route = p.obj(f"route params note gate {names}")
    unpack = p.obj("unpack" + " f" * len(PARAMS))
    p.chain(receive, parse, trim, top, route, unpack)
    if wekinator_port is not None:
        p.text(f"Wekinator mode: /wek/outputs 24 f on port {wekinator_port}")
        p.connect(p.obj(f"netreceive -u -b {wekinator_port}"), 0, parse, 0)
        outputs = p.obj("route outputs")
        p.connect(top, 1, outputs, 0)
        p.connect(outputs, 0, unpack, 0)
    for spec in PARAMS:
        send = p.obj(f"s {PREFIX}{spec.name}")
        p.connect(unpack, spec.index, send, 0)
        p.connect(route, 3 + spec.index, send, 0)
    for outlet, name in ((1, "note"), (2, "gate")):
        p.connect(route, outlet, p.obj(f"s {PREFIX}{name}"), 0)


def controls(p: PdPatch, server_host: str, server_port: int) -> None:
    """Buttons for the server: enable, hold, reset, step size, ping -> `[oscformat]` -> netsend.

    Each widget also listens on `sl-ui-<label>` (e.g. `pd -send "sl-ui-enable 1"` presses it)."""
    p.text(f"to the server ({server_host}:{server_port})")
    to_wire = p.obj("list prepend send")
    trim = p.obj("list trim")
    netsend = p.obj("netsend -u -b")
    connect = p.msg(f"connect {server_host} {server_port}")
    load = p.obj("loadbang")
    p.chain(to_wire, trim, netsend)
    p.chain(load, connect, netsend)
    widgets = (
        (p.toggle, "enable", "agent enable"),
        (p.toggle, "hold", "agent hold"),
        (p.bang, "reset", "agent reset"),
        (p.hslider, "step_size", "agent step_size"),
        (p.bang, "ping", "server ping"),
    )
    for make, label, address in widgets:
        widget = make(label, receive=f"{PREFIX}ui-{label}")
        fmt = p.obj(f"oscformat {address}")
        p.chain(widget, fmt, to_wire)


def voice(p: PdPatch) -> None:
    """The Serum-lite-like voice; every parameter arrives on `[r sl-<name>]` (0..1)."""
    b = Builder(p)
    p.text("voice: 2 morphing oscillators (+unison pair), noise, bob~ low-pass, ADSR, LFO")
    note = p.obj(f"r {PREFIX}note")
    gate = p.obj(f"r {PREFIX}gate")
    detune = b.physical("unison_detune")
    voices = b.physical("unison_voices")
    # LFO: rate, amount, routing depths (pitch semitones, filter octaves, amp fraction)
    lfo = p.obj("osc~")
    p.connect(b.physical("lfo_rate"), 0, lfo, 0)
    lfo_amt = p.obj("*~ 0")
    p.connect(lfo, 0, lfo_amt, 0)
    p.connect(b.physical("lfo_amount"), 0, lfo_amt, 1)
    depths = p.obj(f"expr {LFO_DEPTHS}")
    p.connect(b.physical("lfo_target"), 0, depths, 0)
    pitch_mod = p.obj("expr~ pow(2, $v1*$f2/12)")
    p.connect(lfo_amt, 0, pitch_mod, 0)
    p.connect(depths, 0, pitch_mod, 1)
    mix = p.obj("*~ 1")  # every source is summed into this inlet
    for osc in ("osc1", "osc2"):
        hz = p.obj("expr mtof($f1) ; mtof($f1)*pow(2, $f2/1200) ; mtof($f1)*pow(2, -$f2/1200)")
        if osc == "osc1":
            b.join([(note, 0), (detune, 0)], hz)
        else:
            pitch = p.obj("expr $f1 + $f2 + $f3/100")
            semitones = b.physical("osc2_semitones")
            b.join([(note, 0), (semitones, 0), (b.physical("osc2_fine"), 0)], pitch)
            b.join([(pitch, 0), (detune, 0)], hz)
        weights = p.obj("expr " + " ; ".join(f"max(0, 1-abs($f1-{i}))" for i in range(4)))
        p.connect(b.physical(f"{osc}_wave"), 0, weights, 0)
        gains = p.obj("expr $f1/(1+($f2-1)/3) ; $f1*($f2-1)/6/(1+($f2-1)/3)")
        b.join([(b.physical(f"{osc}_level"), 0), (voices, 0)], gains)
        gain_signals = (b.smooth(gains, 0), b.smooth(gains, 1))  # main voice, unison pair
        for copy in range(3):
            freq = p.obj("*~ 0")
            p.connect(pitch_mod, 0, freq, 0)
            p.connect(hz, copy, freq, 1)
            phase = p.obj("phasor~")
            shape = p.obj(f"expr~ {MORPH}")
            p.chain(freq, phase, shape)
            for w in range(4):
                p.connect(weights, w, shape, 1 + w)
            level = p.obj("*~")
            p.connect(shape, 0, level, 0)
            p.connect(gain_signals[0 if copy == 0 else 1], 0, level, 1)
            p.connect(level, 0, mix, 0)
    noise = p.obj("noise~")
    noise_gain = p.obj("*~")
    p.connect(noise, 0, noise_gain, 0)
    p.connect(b.smooth(b.physical("noise_level")), 0, noise_gain, 1)
    p.connect(noise_gain, 0, mix, 0)
    # filter: cutoff (log, from the table) * 2^(env_amount * mod_env + lfo filter depth * lfo)
    mod_env = b.envelope(("mod_attack", "mod_decay", "mod_sustain", "mod_release"), gate)
    cutoff = p.obj("expr~ min(max($v3*pow(2, $f4*$v1 + $f5*$v2), 20), 18000)")
    p.connect(mod_env, 0, cutoff, 0)
    p.connect(lfo_amt, 0, cutoff, 1)
    p.connect(b.smooth(b.physical("filter_cutoff")), 0, cutoff, 2)
    p.connect(b.physical("filter_env_amount"), 0, cutoff, 3)
    p.connect(depths, 1, cutoff, 4)
    # [bob~] (vanilla's Moog ladder; [vcf~]'s low-pass is silent below Q 1): resonance 0..3.9 from
    # the table's Q (0.5 -> 0, 20 -> 3.9) and the ladder's passband loss made up by (1 + resonance)
    ladder = p.obj("bob~")
    p.connect(mix, 0, ladder, 0)
    p.connect(cutoff, 0, ladder, 1)
    resonance = b.physical("filter_resonance", template=f"{RESONANCE} ; 1 + {RESONANCE}")
    p.connect(resonance, 0, ladder, 2)
    makeup = p.obj("*~ 1")
    p.connect(ladder, 0, makeup, 0)
    p.connect(resonance, 1, makeup, 1)
    # amp: ADSR, LFO tremolo, master volume, clip, out
    amp_env = b.envelope(("amp_attack", "amp_decay", "amp_sustain", "amp_release"), gate)
    amp = p.obj("*~")
    p.connect(makeup, 0, amp, 0)
    p.connect(amp_env, 0, amp, 1)
    tremolo = p.obj("expr~ 1 + $f2*$v1")
    p.connect(lfo_amt, 0, tremolo, 0)
    p.connect(depths, 2, tremolo, 1)
    trem = p.obj("*~")
    p.connect(amp, 0, trem, 0)
    p.connect(tremolo, 0, trem, 1)
    master = p.obj("*~")
    p.connect(trem, 0, master, 0)
    p.connect(b.smooth(b.physical("master_volume")), 0, master, 1)
    clip = p.obj("clip~ -1 1")
    dac = p.obj("dac~")
    p.chain(master, clip, dac)
    p.connect(clip, 0, dac, 1)
    meter = p.obj("env~ 4096 2048")
    to_db = p.obj("- 100")
    p.chain(clip, meter, to_db, p.obj(f"s {PREFIX}out-db"))
    p.floatatom(label="out_dBFS", receive=f"{PREFIX}out-db")
    tap = p.obj(f"s~ {PREFIX}out~")  # the output for other patches: [r~ sl-out~]
    p.connect(clip, 0, tap, 0)


def defaults(p: PdPatch) -> None:
    """On load: every parameter to the table's default, DSP on (the server overrides the values)."""
    load = p.obj("loadbang")
    values = " ; ".join(f"{PREFIX}{spec.name} {num(spec.default_0to1)}" for spec in PARAMS)
    init = p.msg(f"; {values} ; {PREFIX}note 60 ; pd dsp 1")
    p.connect(load, 0, init, 0)


def build(
    listen_port: int = 9001, server_host: str = "127.0.0.1", server_port: int = 9000, wekinator_port: int | None = None
) -> str:
    """The complete `serumlite.pd` text: OSC in, buttons and defaults on the main canvas, the voice
    in a `[pd voice]` subpatch; every section laid out automatically (`pd_layout.arrange`).
    `wekinator_port`: also take `/wek/outputs` there (the server's `--osc-format wekinator`)."""
    sound = PdPatch()
    voice(sound)
    sound.width, sound.height = (v + 40 for v in arrange(sound, range(sound.n_boxes), 20, 20, max_width_px=1500))
    p = PdPatch()
    sections: list[range] = []
    for make in (
        lambda: p.text("Serum-lite for Pd: generated by patches/generate.py from synth/params.py, do not edit"),
        lambda: osc_in(p, listen_port, wekinator_port),
        lambda: controls(p, server_host, server_port),
        lambda: (p.text("the voice (open it to see the synth):"), p.subpatch("voice", sound)),
        lambda: defaults(p),
    ):
        start = p.n_boxes
        make()
        sections.append(range(start, p.n_boxes))
    title, receive, buttons, voice_box, init = sections
    _, title_h = arrange(p, title, 20, 10)
    top = 10 + title_h + 10
    receive_w, receive_h = arrange(p, receive, 20, top, max_width_px=900)
    right = 20 + receive_w + 60
    buttons_w, buttons_h = arrange(p, buttons, right, top, max_width_px=600)
    _, voice_h = arrange(p, voice_box, right, top + buttons_h + 30)
    init_w, init_h = arrange(p, init, right + buttons_w + 60, top, max_width_px=450)
    p.width = right + buttons_w + 60 + init_w + 20
    p.height = top + max(receive_h, buttons_h + 30 + voice_h, init_h) + 20
    return p.render()
