"""Gate-level verification (bnnflow.sim.netlist, ``verify --netlist``): Yosys' mapped netlist
with the YoWASP cell models (and the bundled DP16KD model) matches the golden model with stalls
and a reset, block RAM weights and written block RAM included, and fails on a faulty design;
what cannot be simulated is refused.

A fault in ECP5 block RAM is not injected here: its netlist costs the suite 70-90 s, the
DP16KD cases below already compare every popcount read through both halves of its 36-bit words,
and tests/sim/test_mutations.py makes the ECP5 netlist checker fail on each fault kind."""

import json
from dataclasses import replace

import numpy as np
import pytest

from bnnflow.cli import main
from bnnflow.errors import BnnflowError
from bnnflow.model import golden
from bnnflow.model.artifact import save
from bnnflow.model.random_net import random_model
from bnnflow.sim.netlist import cell_models
from bnnflow.sim.verify import run_verify

#: 37-13-5 folded 1x8,5x13: layer 0's ROM has 65 words (iCE40 SB_RAM40_4K block RAM).
WIDTHS, FOLD = [37, 13, 5], "1x8,5x13"


@pytest.fixture(scope="module")
def net():
    model = random_model(WIDTHS, seed=3)
    bits = np.random.default_rng(0).integers(0, 2, size=(8, WIDTHS[0]), dtype=np.uint8)
    return model, bits


@pytest.mark.parametrize(("family", "simulator"), [
    ("ice40", "icarus"), ("ecp5", "icarus"),
    pytest.param("ice40", "verilator-direct", marks=pytest.mark.slow)])
def test_netlist_matches_golden_with_stalls_and_a_reset(family, simulator, net, build_root):
    model, bits = net
    rep = run_verify(model, simulator=simulator, inputs=bits, fold=FOLD, pipeline=1,
                     stall=0.3, seed=2, netlist=family, reset_mid_stream=True,
                     build_root=build_root)
    assert rep["passed"] and rep["mismatches"] == 0 and rep["netlist"] == family
    assert (rep["ii_measured"], rep["latency_measured"]) == (rep["ii_expected"],
                                                            rep["latency_expected"])
    assert rep["reset_mid_stream"]["applied"]


def test_a_flipped_weight_in_block_ram_fails_the_netlist_naming_the_layer(net, build_root,
                                                                         tmp_path, capsys):
    model, bits = net
    w = model.layers[0].weights.copy()
    w[:, :8] ^= 1         # the first ROM slice of every neuron of layer 0 (block RAM)
    other = replace(model, layers=[replace(model.layers[0], weights=w), *model.layers[1:]])
    assert not np.array_equal(golden.run(other, bits).popcounts, golden.run(model, bits).popcounts)
    paths = [tmp_path / "m.bnn", tmp_path / "hw.bnn", tmp_path / "bits.npy"]
    save(model, paths[0])
    save(other, paths[1])
    np.save(paths[2], bits)
    status = main(["verify", str(paths[0]), "--netlist", "ice40", "--sim", "icarus",
                   "--inputs", str(paths[2]), "--fold", FOLD, "--pipeline", "1",
                   "--hardware-model", str(paths[1]), "--build-dir", str(build_root),
                   "--report", str(tmp_path / "r.json"), "--quiet"])
    rep = json.loads((tmp_path / "r.json").read_text())
    assert status == 1 and rep["mismatches"] > 0
    assert rep["first_mismatch"]["layer"] == "fc0"
    assert "Yosys synth_ice40 netlist" in capsys.readouterr().out


@pytest.mark.parametrize(("widths", "fold"), [
    ([192, 64, 10], "1x96,1x8"),    # a 96-bit x 128-word ROM: DP16KD in its 36-bit mode
    ([784, 4, 3], "1x9,3x4"),       # the input memory in DP16KD, written 9 bits a cycle
])
def test_ecp5_block_ram_reads_and_writes_through_the_dp16kd_model(widths, fold, build_root):
    model = random_model(widths, seed=3)
    # Two images: a gate-level ECP5 run of the first case simulates about 65 cycles a second.
    bits = np.random.default_rng(1).integers(0, 2, size=(2, widths[0]), dtype=np.uint8)
    rep = run_verify(model, simulator="icarus", inputs=bits, fold=fold, pipeline=1,
                     stall=0.2, netlist="ecp5", build_root=build_root)
    assert rep["passed"] and rep["mismatches"] == 0


def test_what_cannot_be_simulated_is_refused_with_one_line(net, tmp_path, capsys):
    model, bits = net
    with pytest.raises(BnnflowError, match="Amaranth's simulator cannot run"):
        run_verify(model, simulator="amaranth", inputs=bits, netlist="ice40")
    # SIMD 4 over 784 inputs: a 4-bit DP16KD port, which the model does not cover.
    narrow = random_model([784, 4, 3], seed=3)
    path = tmp_path / "narrow.bnn"
    save(narrow, path)
    np.save(tmp_path / "b.npy", np.zeros((2, 784), dtype=np.uint8))
    status = main(["verify", str(path), "--netlist", "ecp5", "--sim", "icarus",
                   "--inputs", str(tmp_path / "b.npy"), "--fold", "1x4,3x4", "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "DP16KD block RAM port of 1, 2 or 4 bits" in err


def test_cell_models_inline_their_includes_once():
    text = cell_models("ecp5")
    assert "`include" not in text.replace("`include\"", "")
    assert text.count("module OLVDS") == 1 and text.count("module CCU2C") == 1
    # Yosys' parameter-only DP16KD is replaced by the behavioural model.
    assert text.count("module DP16KD") == 1 and "reg [17:0] mem [0:1023];" in text
    assert cell_models("ice40").startswith("`define NO_ICE40_DEFAULT_ASSIGNMENTS")
    with pytest.raises(BnnflowError, match="netlist family must be one of ice40, ecp5"):
        cell_models("gowin")


def test_fold_fit_needs_a_device_and_no_ii(net, tmp_path, capsys):
    model, bits = net
    path = tmp_path / "m.bnn"
    save(model, path)
    np.save(tmp_path / "b.npy", bits)
    common = ["verify", str(path), "--sim", "icarus", "--inputs", str(tmp_path / "b.npy"),
              "--fold", "fit", "--quiet"]
    assert main(common) == 2
    assert "--fold fit needs the device to place on: --target, --board or --netlist" in (
        capsys.readouterr().err)
    assert main([*common, "--netlist", "ice40", "--ii", "8"]) == 2
    assert "--ii does not apply with --fold fit" in capsys.readouterr().err


@pytest.mark.slow
def test_fold_fit_verifies_the_netlist_of_the_folding_that_places(net, tmp_path, capsys,
                                                                 build_root):
    model, bits = net
    path = tmp_path / "m.bnn"
    save(model, path)
    np.save(tmp_path / "b.npy", bits)
    status = main(["verify", str(path), "--sim", "icarus", "--inputs", str(tmp_path / "b.npy"),
                   "--fold", "fit", "--netlist", "ice40", "--build-dir", str(build_root),
                   "--report", str(tmp_path / "r.json"), "--quiet"])
    out = capsys.readouterr().out
    rep = json.loads((tmp_path / "r.json").read_text())
    assert status == 0 and rep["passed"] and rep["netlist"] == "ice40"
    fit = [line for line in out.splitlines() if line.startswith("fit: ")]
    assert fit and "places on the ice40-up5k" in fit[0]
    assert fit[0].split()[1] == ",".join(f"{pe}x{simd}" for pe, simd in rep["folding"])


@pytest.mark.slow
def test_a_pixel_window_ring_in_block_ram_matches_golden_at_gate_level(build_root):
    # The ring (6 rows of 7 pixels of 4 bits) carries no_rw_check, so Yosys maps it to an
    # SB_RAM40_4K without read-during-write emulation: the mapped netlist must still match
    # (the reader never reads the row being written). About 40 s.
    from bnnflow.boards.memory_map import Placement, placement
    from bnnflow.hw.top import BnnTop
    from bnnflow.model.random_net import random_conv_model

    model = random_conv_model((8, 7, 4), [("conv", 6, 3), ("dense", 5)], 3, seed=0)
    fold = "1x4,5x30,3x5"
    top = BnnTop(model, fold)
    top._MustUse__silence = True
    assert top.layers[0].window_kind == "pixels" and top.layers[0].window.rows == 6
    assert placement("ice40", 4, 42, no_rw_check=True) == Placement("bram", "SB_RAM40_4K", 1)
    bits = np.random.default_rng(0).integers(0, 2, size=(3, model.input.width), dtype=np.uint8)
    rep = run_verify(model, simulator="icarus", inputs=bits, fold=fold, stall=0.3, seed=1,
                     netlist="ice40", build_root=build_root)
    assert rep["passed"] and rep["mismatches"] == 0
    measured = (rep["ii_measured"], rep["latency_measured"])
    assert measured == (rep["ii_expected"], rep["latency_expected"]) == (1620, 1186)


@pytest.mark.slow
@pytest.mark.parametrize(("family", "cell"), [("ice40", "bram"), ("ecp5", "lutram")])
def test_row_window_banks_match_golden_at_gate_level(build_root, family, cell):
    # A row window's three banks (6 rows of 3 words of 8 bits each, no_rw_check) go to
    # SB_RAM40_4K on iCE40 and TRELLIS_DPR16X4 on ECP5; the mapped netlist, rotation of the
    # banks' words included, must match the golden model.
    from bnnflow.boards.memory_map import placement
    from bnnflow.hw.top import BnnTop
    from bnnflow.model.random_net import random_conv_model

    model = random_conv_model((8, 7, 8), [("conv", 6, 3), ("dense", 5)], 3, seed=0)
    fold = "6x24,5x30,3x5"
    top = BnnTop(model, fold)
    top._MustUse__silence = True
    assert top.layers[0].window_kind == "rows" and top.layers[0].window.rows == 6
    assert placement(family, 8, 18, no_rw_check=True).kind == cell
    bits = np.random.default_rng(0).integers(0, 2, size=(3, model.input.width), dtype=np.uint8)
    rep = run_verify(model, simulator="icarus", inputs=bits, fold=fold, stall=0.3, seed=1,
                     netlist=family, build_root=build_root)
    assert rep["passed"] and rep["mismatches"] == 0
    measured = (rep["ii_measured"], rep["latency_measured"])
    assert measured == (rep["ii_expected"], rep["latency_expected"])
