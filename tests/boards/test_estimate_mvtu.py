"""The LUT4 model of an MVTU: ROMs in logic, threshold tables, the terms, the fit's spread."""

import json
import subprocess

import numpy as np
import pytest

from bnnflow.boards import estimate, estimate_mvtu
from bnnflow.boards.estimate_mvtu import (
    LUT4_PER_XNOR_BIT,
    TERMS,
    mvtu_luts,
    mvtu_terms,
    rom_luts,
    threshold_tables,
)
from bnnflow.hw.folding import LayerFold
from bnnflow.model.random_net import random_conv_model, random_model

# Yosys 0.70 synth_ice40 of a lone ROM (random contents, registered read) kept in logic:
# (width, words, LUT4), measured 2026-12-06 (bench/README.md, "LUT4 of an MVTU, refitted").
ICE40_ROMS = [(4, 32, 18), (64, 32, 238), (4, 64, 33), (64, 64, 515), (2, 320, 102),
              (1, 320, 47), (32, 54, 248), (8, 80, 96), (3, 128, 59), (16, 40, 96),
              (16, 56, 137), (16, 64, 149), (16, 48, 102), (16, 32, 58), (16, 24, 47),
              (16, 20, 32), (16, 16, 16), (16, 8, 15), (16, 4, 3), (16, 2, 1)]
# The same on ECP5 (synth_ecp5: LUT4, its PFUMX and L6MUX21 joining them).
ECP5_ROMS = [(16, 2, 1), (16, 3, 2), (16, 8, 16), (16, 16, 17), (16, 20, 31), (16, 24, 32),
             (16, 32, 32), (16, 48, 64), (16, 64, 64), (16, 96, 128), (16, 128, 128)]


@pytest.mark.parametrize(("width", "words", "measured"), ICE40_ROMS)
def test_ice40_rom_in_logic_follows_the_measured_luts(width, words, measured):
    assert rom_luts("ice40", width, words) == pytest.approx(measured, rel=0.2, abs=2)


@pytest.mark.parametrize(("width", "words", "measured"), ECP5_ROMS)
def test_ecp5_rom_in_logic_takes_a_lut4_per_bit_and_16_words_of_a_power_of_two(width, words,
                                                                             measured):
    assert rom_luts("ecp5", width, words) == pytest.approx(measured, abs=1)


def test_a_one_word_rom_is_free():
    assert rom_luts("ice40", 64, 1) == rom_luts("ecp5", 64, 1) == 0


def test_threshold_tables_per_pe_and_level_are_as_wide_as_their_largest_value():
    model = random_model([24, 12, 10], seed=3, act_bits=2)
    layer = model.layers[0]
    fold = LayerFold(4, 24)                                 # SF 1, NF 3: the Threshold tables
    tables = threshold_tables(layer, fold)
    t = np.zeros((12, 3), dtype=np.int64)
    t[:12] = layer.thresholds
    assert tables == [(max(1, int(t[p::4, i].max()).bit_length()), 3)
                      for p in range(4) for i in range(3)]
    assert len({w for w, _ in tables}) > 1                  # the widths differ per table


def test_binary_activations_over_several_synapse_folds_keep_minus_t_per_pe():
    model = random_model([24, 12, 10], seed=3)
    tables = threshold_tables(model.layers[0], LayerFold(4, 8))       # SF 3, NF 3
    assert tables == [((24 + 1).bit_length() + 1, 3)] * 4


@pytest.mark.parametrize("fold", [LayerFold(12, 8), LayerFold(1, 24)])
def test_no_tables_without_neuron_folds_or_in_the_output_layer(fold):
    model = random_model([24, 12, 10], seed=3)
    layer = model.layers[0]
    if fold.pe == layer.neurons:
        assert threshold_tables(layer, fold) == []
    assert threshold_tables(model.layers[1], LayerFold(1, 12)) == []


def test_terms_follow_the_structure():
    model = random_model([64, 32, 10], seed=0, act_bits=2)
    layer = model.layers[0]
    whole = mvtu_terms(layer, LayerFold(4, 64), 64, False, "ice40")          # SF 1
    assert whole["input_register"] == 64 and whole["whole_input"] == 0
    assert whole["accumulate"] == 0 and whole["xnor"] == 4 * 64
    assert whole["compare"] == 4 * 3 * 7                        # PE x levels x bits(64)
    folded = mvtu_terms(layer, LayerFold(4, 16), 64, False, "ice40")         # SF 4
    assert folded["input_register"] == 0 and folded["whole_input"] == 64
    assert folded["accumulate"] == 4 * 7
    chunked = mvtu_terms(layer, LayerFold(4, 16), 16, False, "ice40")
    assert chunked["whole_input"] == 0
    assert set(whole) == set(TERMS) | {"lutram"}


def test_ternary_weights_and_n_bit_inputs_scale_the_xnor_terms():
    binary = random_model([64, 32, 10], seed=0)
    ternary = random_model([64, 32, 10], seed=0, ternary=True)
    wide = random_model([64, 32, 10], seed=0, input_bits=8)
    fold = LayerFold(4, 16)
    t_bin = mvtu_terms(binary.layers[0], fold, 64, False, "ice40")
    t_ter = mvtu_terms(ternary.layers[0], fold, 64, False, "ice40")
    t_wide = mvtu_terms(wide.layers[0], fold, 512, False, "ice40")
    assert t_bin["ternary"] == 0 and t_ter["ternary"] == t_ter["xnor"] == 64
    assert t_wide["xnor"] == 8 * t_bin["xnor"]


def test_an_ecp5_input_memory_in_lut_ram_counts_its_comb_cells():
    # 192-64-64-64-10 at 1x48: 48-bit words, 4 slices -> 2 banks of 4 words in LUT RAM on ECP5
    # (bench/memory_map.py), 12 TRELLIS_DPR16X4 of 6 TRELLIS_COMB each.
    model = random_model([192, 64, 64, 64, 10], seed=0)
    terms = mvtu_terms(model.layers[0], LayerFold(1, 48), 192, False, "ecp5")
    assert terms["lutram"] == 6 * 12
    assert mvtu_terms(model.layers[0], LayerFold(1, 48), 192, False, "ice40")["lutram"] == 0


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_a_fully_parallel_layer_costs_its_weights(family):
    layer = random_model([32, 16, 10], seed=0).layers[0]
    assert mvtu_luts(layer, LayerFold(16, 32), 32, False, family) == pytest.approx(
        LUT4_PER_XNOR_BIT[family] * 32 * 16)


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_coefficients_cover_every_term_and_are_not_negative(family):
    coef = estimate_mvtu.MVTU_LUT[family]
    assert set(coef) == set(TERMS)
    assert all(v >= 0 for v in coef.values())


def _yosys_logic(top, family, tmp_path):
    from amaranth.back import rtlil

    from bnnflow.boards.synth import SYNTH_TOP, _run_yosys
    from bnnflow.boards.tools import find_tool
    from bnnflow.boards.wrapper import SynthWrapper

    (tmp_path / "design.il").write_text(rtlil.convert(SynthWrapper(top), name=SYNTH_TOP))
    _, counts = _run_yosys(find_tool("yosys"), family, tmp_path, tmp_path)
    return counts


@pytest.mark.slow
@pytest.mark.parametrize(("family", "fold"), [("ecp5", "auto:2048"), ("ice40", "auto:512")])
def test_conv_estimate_follows_yosys(tmp_path, family, fold):
    # A padded conv net with 2-bit activations (bench/conv_estimate.py's): before the refit the
    # estimate was 25 to 36 % under on such designs; the fit's spread on 105 ECP5 and 24 iCE40
    # flattened designs is -17 to +12 % (bench/README.md).
    from bnnflow.hw.folding import resolve_folding
    from bnnflow.hw.top import BnnTop

    model = random_conv_model((14, 14, 3), [("conv", 8, 3, 3, 1, 1), ("pool", 2),
                                            ("conv", 16, 3, 3, 1, 1, 0), ("pool", 2),
                                            ("dense", 32)], 10, seed=0, act_bits=2)
    folding = resolve_folding(model, "auto", int(fold[5:]))
    counts = _yosys_logic(BnnTop(model, folding, 0,
                                 rom_register=estimate.ROM_REGISTER[family]), family, tmp_path)
    assert estimate.estimate_luts(model, folding, family) == pytest.approx(counts.logic,
                                                                            rel=0.15)


@pytest.mark.slow
def test_ecp5_logic_measure_matches_what_nextpnr_packs(tmp_path):
    # CellCounts.logic on ECP5 is nextpnr's TRELLIS_COMB: LUT4 + 3.2 per CCU2C + 6 per
    # TRELLIS_DPR16X4 (fitted on 12 designs within 21 cells each). A design with carry cells
    # and LUT RAM input memories (192-64-64-64-10 at 1x48: 12 DPR16X4).
    from bnnflow.boards.tools import find_tool
    from bnnflow.hw.folding import resolve_folding
    from bnnflow.hw.top import BnnTop

    model = random_model([192, 64, 64, 64, 10], seed=0)
    folding = resolve_folding(model, "1x48,1x16,1x16,1x3")
    counts = _yosys_logic(BnnTop(model, folding, 0, rom_register=True), "ecp5", tmp_path)
    assert counts.lutram > 0 and counts.carry > 0
    subprocess.run([*find_tool("nextpnr-ecp5"), "--25k", "--package", "CABGA381", "--json",
                    "netlist.json", "--report", "pack.json", "--out-of-context", "--pack-only",
                    "--quiet"], cwd=tmp_path, check=True, capture_output=True)
    used = json.loads((tmp_path / "pack.json").read_text())["utilization"]
    assert counts.logic == pytest.approx(used["TRELLIS_COMB"]["used"], rel=0.03)
    assert counts.lut4 + 2 * counts.carry < 0.97 * used["TRELLIS_COMB"]["used"]


def test_rom_columns_count_the_distinct_non_constant_columns():
    from bnnflow.model.dense import DenseLayer

    # 2 neurons x 4 inputs at 1x2: 4 words of 2 bits; column s holds inputs s and 2 + s of
    # both neurons. Equal columns count once, a constant column not at all.
    def layer(weights):
        w = np.array(weights, dtype=np.uint8)
        return DenseLayer("fc", w, np.zeros((2, 1), dtype=np.int64))

    fold = LayerFold(1, 2)
    assert estimate_mvtu.rom_columns(layer([[1, 1, 0, 0], [1, 1, 1, 1]]), fold) == 1
    assert estimate_mvtu.rom_columns(layer([[1, 0, 0, 1], [1, 0, 1, 1]]), fold) == 2
    assert estimate_mvtu.rom_columns(layer([[1, 1, 1, 1], [0, 0, 0, 0]]), fold) == 1
    assert estimate_mvtu.rom_columns(layer([[1, 1, 1, 1], [1, 1, 1, 1]]), fold) == 0


@pytest.mark.slow
@pytest.mark.parametrize("rom_register", [False, True])
def test_registers_fed_by_a_shallow_rom_in_logic_follow_yosys(tmp_path, rom_register):
    # 6 words of 384 bits: Yosys keeps a flip-flop per distinct column (61 of 384 for the
    # ROM register); counting whole registers made the layer's estimate 3 to 4 times Yosys'.
    from amaranth.back import rtlil

    from bnnflow.hw.folding import resolve_folding
    from bnnflow.hw.top import BnnTop
    from bnnflow.sim.netlist import yosys_command

    model = random_model([144, 16, 4], seed=0)
    folding = resolve_folding(model, "8x48,4x16")
    (tmp_path / "u.il").write_text(rtlil.convert(BnnTop(model, folding, 0,
                                                        rom_register=rom_register),
                                                 name="top", emit_src=False))
    subprocess.run([*yosys_command(), "-q", "-p", "read_rtlil u.il; synth_ecp5 -top top "
                    "-noflatten; tee -q -o s.json stat -json"], cwd=tmp_path, check=True)
    mods = json.loads((tmp_path / "s.json").read_text())["modules"]
    cells = next(m for name, m in mods.items() if name.endswith("layer_0"))["num_cells_by_type"]
    flops = cells.get("TRELLIS_FF", 0)
    streams = estimate._mvtu_streams(model, folding)
    est = estimate._layer_ffs(model.layers[0], folding[0], *streams[0], 0, "ecp5", rom_register)
    assert est == pytest.approx(flops, rel=0.3)
