"""``bnnflow verify --reset-mid-stream``: a reset with images inside the design, on every simulator.

The designs are folded so that their layers hold the input vectors in memory, at sizes that do
not divide (``K`` not a multiple of ``SIMD``, ``N`` not a multiple of ``PE``), with both kinds
of memory input: whole vectors written a word a cycle and chunked streams from a layer whose
``PE`` divides the next ``SIMD``. Each back end must apply the reset at the same edge as
Amaranth's simulator and match the golden model before and after it; a design whose data path
ignores the reset, and one with a flipped weight bit seen only in images sent again, must fail.
"""

import json
from dataclasses import replace
from functools import cache
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.back import verilog as amaranth_verilog
from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module
from amaranth.lib import wiring

from bnnflow.cli import main
from bnnflow.errors import BnnflowError
from bnnflow.hw.folding import resolve_folding
from bnnflow.hw.verilog import generate, time_zero_events
from bnnflow.model import golden
from bnnflow.model.conventions import pack_int
from bnnflow.model.random_net import random_model
from bnnflow.sim import direct
from bnnflow.sim.amaranth_sim import run_bench
from bnnflow.sim.backend import SimJob
from bnnflow.sim.scoreboard import OutputLayout
from bnnflow.sim.stimulus import StreamBench, default_max_idle
from bnnflow.sim.verify import TOP_NAME, HwDesign, run_verify

SIMULATORS = ["amaranth", "icarus", "verilator", "verilator-direct"]
#: name: (widths, folding, what the folding exercises)
NETS = {
    # Layer 0 takes whole 37-bit vectors a word of 8 a cycle, layer 2 chunks of 4 (PE 4 of
    # layer 1 divides SIMD 4); layer 1 reads all 13 inputs at once (registers).
    "odd": ([37, 13, 11, 5], "5x8,4x13,2x4"),
    # Layer 1 copies whole 13-bit vectors (PE 3 does not divide SIMD 4), layer 2 single bits.
    "copy": ([37, 13, 11, 5], "3x5,1x4,2x3"),
    # Chunks of 3 into SIMD 6 with a padded last fold, whole vectors into layer 2.
    "chunked": ([20, 7, 9, 3], "3x5,2x6,1x3"),
    # Single bits into SIMD 2.
    "bits": ([13, 6, 5], "1x4,1x2"),
}
IMAGES, STALL, SEED, PIPELINE = 16, 0.3, 2, 1
RESET_AFTER = IMAGES // 2


def _cases(names, fast):
    """``(simulator, name)`` parameters; the Verilator ones not in ``fast`` are marked slow (each
    builds one or two designs, 10-70 s on the shared machine). cocotb + Verilator runs only
    the cases in ``fast``: its bench is the one cocotb + Icarus runs on every case."""
    return [pytest.param(sim, name, id=f"{sim}-{name}",
                         marks=pytest.mark.slow if sim.startswith("verilator")
                         and (sim, name) not in fast else ())
            for sim in SIMULATORS for name in names
            if sim != "verilator" or (sim, name) in fast]


@cache
def _net(name):
    widths, fold = NETS[name]
    model = random_model(widths, seed=0)
    bits = np.random.default_rng(1).integers(0, 2, size=(IMAGES, widths[0]), dtype=np.uint8)
    return SimpleNamespace(name=name, model=model, fold=fold, bits=bits,
                           folding=resolve_folding(model, fold, None))


def _verify(net, simulator, build_root, **kw):
    args = dict(simulator=simulator, fold=net.fold, pipeline=PIPELINE, inputs=net.bits,
                stall=STALL, seed=SEED, reset_mid_stream=True, build_root=build_root)
    return run_verify(net.model, **{**args, **kw})


@cache
def _amaranth(name, hardware="as-is"):
    """The Amaranth report that every other back end must reproduce (cached per worker)."""
    net = _net(name)
    design = IgnoresReset(net) if hardware == "ignores-reset" else None
    return _verify(net, "amaranth", None, design=design)


def _inner_inputs(layer):
    """How an inner layer's input arrives: ``chunks``, ``copied`` (whole vectors written a word
    a cycle) or ``registers``."""
    if layer["input_buffer"] == "registers":
        return "registers"
    return "chunks" if layer["in_chunk"] < layer["in_width"] else "copied"


@pytest.mark.parametrize(("name", "inner"), [
    ("odd", ["registers", "chunks"]), ("copy", ["copied", "chunks"]),
    ("chunked", ["chunks", "copied"]), ("bits", ["chunks"])])
def test_the_designs_hold_their_inputs_in_memory_at_sizes_that_do_not_divide(name, inner):
    """What the cases below exercise, read from the sidecar."""
    net = _net(name)
    _, sidecar = generate(net.model, net.folding, PIPELINE)
    layers = sidecar["layers"]
    # The first layer writes whole input vectors into memory a word a cycle, so an image is
    # partly taken while i.valid is high and i.ready low (the reset waits for that).
    assert layers[0]["input_buffer"] == "memory" and layers[0]["accept_wait"] > 0
    assert [_inner_inputs(layer) for layer in layers[1:]] == inner
    assert any(layer["in_width"] % layer["simd"] for layer in layers)
    assert any(layer["out_width"] % layer["pe"] for layer in layers) is (name != "bits")


@pytest.mark.parametrize(("simulator", "name"), _cases(NETS, {
    ("verilator", "odd"), ("verilator-direct", "odd"), ("verilator-direct", "chunked")}))
def test_reset_mid_stream_matches_golden_at_the_same_edge_as_amaranth(simulator, name,
                                                                     build_root):
    rep = _verify(_net(name), simulator, build_root)
    assert rep["passed"], rep
    assert rep["mismatches"] == rep["timing_mismatches"] == rep["missing_outputs"] == 0
    assert rep["first_mismatch"] is None and rep["timing_ok"]
    reset = rep["reset_mid_stream"]
    assert reset["applied"] and reset["after"] == RESET_AFTER and reset["stale_outputs"] == 0
    # Inside the design at the reset: an output waiting in the output register and at least
    # one more image, and the next image offered but not yet taken.
    assert reset["images_in_flight"] >= 2 and reset["input_waiting"]
    assert reset["restart_image"] + reset["images_in_flight"] >= RESET_AFTER
    assert reset["restart_image"] >= 1
    want = _amaranth(name)
    assert rep["cycles"] == want["cycles"]
    assert reset == want["reset_mid_stream"]


@pytest.mark.parametrize(("name", "stall", "seed"), [("odd", 0.0, 0), ("chunked", 0.5, 7),
                                                     ("bits", 0.8, 3)])
def test_direct_harness_replays_the_reset_transfer_for_transfer(name, stall, seed, build_root):
    """The C++ harness runs its own copy of the reset rules: every transfer edge, payload and
    the reset itself equal Amaranth's bench (stall 0 included: the hold makes the output
    wait)."""
    net = _net(name)
    design = HwDesign(net.model, net.folding, PIPELINE)
    main_inputs = [pack_int(b) for b in net.bits]
    timing_inputs = main_inputs[:8]
    top, sidecar = design.component()
    bench = StreamBench(main_inputs, timing_inputs, stall=stall, seed=seed,
                        max_idle=default_max_idle(sidecar["latency"], sidecar["ii"], stall),
                        reset_after=5, min_latency=sidecar["latency"])
    run_bench(top, bench)
    want = bench.to_dict()
    got = direct.simulate(design, SimJob(main_inputs, timing_inputs, stall=stall, seed=seed,
                                         build_root=build_root, reset_after=5))
    sidecar = got.sidecar
    for key in ("outputs", "in_edges", "out_edges", "stuck", "cycles", "latency", "ii", "reset",
                "stale"):
        assert getattr(got, key) == want[key], key
    assert want["reset"] is not None and want["reset"]["in_flight"] >= 1
    layout = OutputLayout.from_sidecar(sidecar)
    ref = golden.run(net.model, net.bits)
    assert [layout.decode(v) for v in want["outputs"]["main"]] == [
        (int(c), p.tolist()) for c, p in zip(ref.classes, ref.popcounts, strict=True)]


# -- broken designs ---------------------------------------------------------------------------

class IgnoresReset(HwDesign):
    """The network in a clock domain without reset: ``rst`` reaches nothing (the images in flight
    at the reset come out afterwards, as stale outputs)."""

    def __init__(self, net):
        super().__init__(net.model, net.folding, PIPELINE)

    def component(self, debug_taps=False):
        top, sidecar = super().component(debug_taps)
        return _NoReset(top), sidecar

    def verilog(self, debug_taps=False):
        wrapper, sidecar = self.component(debug_taps)
        # As hw.verilog.generate does: the time-0 events that SystemVerilog mode needs.
        return time_zero_events(amaranth_verilog.convert(wrapper, name=TOP_NAME,
                                                         emit_src=False)), sidecar


class _NoReset(wiring.Component):
    """``top`` with the same ports, clocked by ``sync`` in a domain that has no reset (the
    ``rst`` port stays: the bench drives it)."""

    def __init__(self, top):
        self._top = top
        super().__init__(top.signature)

    def elaborate(self, platform):
        m = Module()
        m.domains.free = ClockDomain("free", reset_less=True, local=True)
        m.d.comb += ClockSignal("free").eq(ClockSignal("sync"))
        m.submodules.top = DomainRenamer("free")(self._top)
        for name, member in self.signature.members.items():
            ours, theirs = getattr(self, name), getattr(self._top, name)
            if member.is_signature and member.flow == wiring.In:
                wiring.connect(m, wiring.flipped(ours), theirs)
            elif member.is_signature:
                wiring.connect(m, theirs, wiring.flipped(ours))
            elif member.flow == wiring.In:
                m.d.comb += theirs.eq(ours)
            else:
                m.d.comb += ours.eq(theirs)
        return m


@pytest.mark.parametrize(("simulator", "name"), _cases(["odd"], {("verilator-direct", "odd")}))
def test_outputs_left_over_from_before_the_reset_fail_the_run(simulator, name, build_root):
    net = _net(name)
    rep = _verify(net, simulator, build_root, design=IgnoresReset(net))
    assert not rep["passed"]
    reset = rep["reset_mid_stream"]
    assert reset["applied"] and reset["stale_outputs"] >= 1
    assert rep["mismatches"] >= reset["stale_outputs"]
    # The stale outputs are those of the images in flight at the reset, in order, after it.
    restart, stale = reset["restart_image"], reset["stale"]
    assert len(stale) <= reset["images_in_flight"]
    ref = golden.run(net.model, net.bits[restart:restart + len(stale)])
    assert [(s["class"], s["popcounts"]) for s in stale] == [
        (int(c), p.tolist()) for c, p in zip(ref.classes, ref.popcounts, strict=True)]
    assert all(s["edge"] > reset["edge"] for s in stale)
    # The same stale outputs at the same edges on every back end.
    assert reset == _amaranth(name, "ignores-reset")["reset_mid_stream"]
    # Unchanged: the timing phase runs before the reset.
    assert rep["timing_ok"] and rep["timing_mismatches"] == 0


def _flipped_weight_after_restart(model, bits, restart, layer=1):
    """A copy of ``model`` with one weight of ``layer`` flipped whose first wrong image is one
    sent again after the reset: ``(model, image)``."""
    want = golden.run(model, bits)
    w = model.layers[layer].weights
    for n in range(w.shape[0]):
        for k in range(w.shape[1]):
            flipped = w.copy()
            flipped[n, k] ^= 1
            layers = list(model.layers)
            layers[layer] = replace(layers[layer], weights=flipped)
            perturbed = replace(model, layers=layers)
            got = golden.run(perturbed, bits)
            wrong = np.flatnonzero((got.classes != want.classes)
                                   | np.any(got.popcounts != want.popcounts, axis=1))
            if wrong.size and wrong[0] >= restart:
                return perturbed, int(wrong[0])
    raise AssertionError("no weight flip first visible after the restart")


@pytest.mark.parametrize(("simulator", "name"), _cases(["odd"], {("verilator-direct", "odd")}))
def test_flipped_weight_seen_only_in_resent_images_is_caught_and_located(simulator, name,
                                                                        build_root):
    net = _net(name)
    restart = _amaranth(name)["reset_mid_stream"]["restart_image"]
    perturbed, image = _flipped_weight_after_restart(net.model, net.bits, restart)
    rep = _verify(net, simulator, build_root, hardware_model=perturbed)
    assert not rep["passed"] and rep["mismatches"] >= 1
    reset = rep["reset_mid_stream"]
    # Same timing as the unperturbed design: the reset hits the same images.
    assert reset["applied"] and reset["restart_image"] == restart
    assert reset["stale_outputs"] == 0
    first = rep["first_mismatch"]
    # The diagnosis reruns the stream, reset included, and names the flipped layer.
    assert first["image"] == image and first["layer_index"] == 1
    got = golden.run(perturbed, net.bits[image:image + 1])
    assert first["actual"] == {"class": int(got.classes[0]),
                               "popcounts": got.popcounts[0].tolist()}


@pytest.mark.parametrize("simulator", ["amaranth",
                                       pytest.param("verilator-direct", marks=pytest.mark.slow)])
def test_dropped_ready_loses_vectors_around_the_reset(simulator, net, input_bits, build_root):
    # Layer 1 is the slowest, so layer 0's output ignoring its ready loses vectors.
    rep = run_verify(net.model, simulator=simulator, fold=net.slow_second_fold,
                     inputs=input_bits, stall=0.3, seed=1, fault=("drop_ready", 0),
                     reset_mid_stream=True, build_root=build_root)
    assert not rep["passed"] and rep["mismatches"] >= 1
    assert rep["first_mismatch"]["layer_index"] == 1


# -- command line -----------------------------------------------------------------------------

def test_cli_reset_mid_stream_reports_the_edge_and_passes(model_files, net, build_root,
                                                          tmp_path, capsys):
    model_path, inputs_path = model_files
    common = ["verify", str(model_path), "--sim", "amaranth", "--fold", net.fold,
              "--pipeline", str(net.pipeline), "--inputs", str(inputs_path), "--images", "all",
              "--stall", "0.3", "--seed", "4", "--quiet"]
    plain, reset = tmp_path / "plain.json", tmp_path / "reset.json"
    assert main([*common, "--report", str(plain)]) == 0
    capsys.readouterr()
    assert main([*common, "--reset-mid-stream", "--reset-after", "5",
                 "--report", str(reset)]) == 0
    out = capsys.readouterr().out
    off, on = json.loads(plain.read_text()), json.loads(reset.read_text())
    assert off["reset_mid_stream"] is None
    entry = on["reset_mid_stream"]
    assert entry["applied"] and entry["after"] == 5 and entry["stale_outputs"] == 0
    assert 0 < entry["edge"] < on["cycles"]
    assert on["passed"] and on["mismatches"] == 0 and on["images"] == off["images"]
    # The reset adds the hold, the reset cycle and the images sent again.
    assert on["cycles"] > off["cycles"]
    assert "reset after 5 images" in out and f"edge {entry['edge']}" in out
    assert "stale outputs after the reset" in out
    # --reset-after alone implies the reset; without a number it comes after half the images.
    alone = tmp_path / "alone.json"
    assert main([*common, "--reset-after", "5", "--report", str(alone)]) == 0
    assert json.loads(alone.read_text())["reset_mid_stream"] == entry
    half = tmp_path / "half.json"
    assert main([*common, "--reset-mid-stream", "--report", str(half)]) == 0
    assert json.loads(half.read_text())["reset_mid_stream"]["after"] == 12


@pytest.mark.parametrize(("args", "message"), [
    (["--reset-after", "24"], "error: reset_after must be an integer in 1..23 (images "
                              "transferred before the reset, one left to send), not 24"),
    (["--reset-mid-stream", "--images", "1"],
     "error: a reset mid-stream needs at least 2 images, not 1"),
])
def test_impossible_reset_is_one_line_exit_2(args, message, model_files, tmp_path, capsys):
    model_path, inputs_path = model_files
    report = tmp_path / "r.json"
    status = main(["verify", str(model_path), "--sim", "amaranth", "--inputs", str(inputs_path),
                   "--report", str(report), "--quiet", *args])
    err = capsys.readouterr().err
    assert status == 2
    assert err.strip() == message
    assert not report.exists()


@pytest.mark.parametrize("value", ["0", "-3", "x"])
def test_reset_after_must_be_a_positive_integer(value, model_files, capsys):
    model_path, _ = model_files
    with pytest.raises(SystemExit) as e:
        main(["verify", str(model_path), "--sim", "amaranth", "--reset-after", value])
    assert e.value.code == 2
    assert f"--reset-after: must be a positive integer, not '{value}'" in capsys.readouterr().err


def test_reset_after_without_reset_mid_stream_is_refused(net, input_bits):
    with pytest.raises(BnnflowError, match=r"^reset_after=3 needs reset_mid_stream=True$"):
        run_verify(net.model, simulator="amaranth", inputs=input_bits, reset_after=3)
