"""The resource model: LUT4, flip-flop, logic-cell and block RAM estimates, ROM depth rules."""

import pytest

from bnnflow.boards import estimate, estimate_mvtu
from bnnflow.boards.targets import rom_blocks
from bnnflow.hw.folding import LayerFold, auto_fold, resolve_folding
from bnnflow.model.random_net import random_model
from bnnflow.tool_reports import cell_counts

R64 = random_model([64, 64, 64, 64, 10], seed=0)


# Yosys 0.70 synth_ice40 counts of R64 inside the synthesis wrapper, measured with
# bench/fit_bench.py (boards/README.md); the estimates must stay within 10 % (LUT4) and 2 %
# (flip-flops).
@pytest.mark.parametrize(("ii", "pipeline", "lut4", "ff"), [(32, 2, 3278, 2262),
                                                            (64, 0, 3046, 1580)])
def test_logic_estimates_match_measured_counts(ii, pipeline, lut4, ff):
    fold, _ = auto_fold(R64, ii)
    assert estimate.estimate_luts(R64, fold) == pytest.approx(lut4, rel=0.10)
    assert estimate.estimate_ffs(R64, fold, pipeline) == pytest.approx(ff, rel=0.02)


TFC = random_model([192, 64, 64, 64, 10], seed=0)


# Yosys 0.70 flip-flop counts of the thermometer-coded tfc (192-64-64-64-10, pipeline 2) inside
# the synthesis wrapper, without and with the weight register after the ROMs (hw/README.md):
# iCE40 II 256 2416 -> 2503, ECP5 II 256 2417 -> 2504, ECP5 II 32 3428 -> 4091.
@pytest.mark.parametrize(("family", "fold", "added"), [
    ("ice40", "1x48,1x16,1x16,1x3", 2503 - 2416),
    ("ecp5", "1x48,1x16,1x16,1x3", 2504 - 2417),
    ("ecp5", "2x192,2x64,2x64,5x4", 4091 - 3428),
])
def test_rom_register_estimate_adds_the_measured_flip_flops(family, fold, added):
    folding = resolve_folding(TFC, fold)
    with_reg = estimate.estimate_ffs(TFC, folding, 2, family, rom_register=True)
    without = estimate.estimate_ffs(TFC, folding, 2, family, rom_register=False)
    assert with_reg - without == pytest.approx(added, abs=2)
    assert with_reg - without >= sum(f.pe * f.simd for f in folding)


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_rom_register_estimate_follows_the_family_default(family):
    folding = resolve_folding(TFC, "1x48,1x16,1x16,1x3")
    default = estimate.estimate_ffs(TFC, folding, 2, family)
    chosen = estimate.estimate_ffs(TFC, folding, 2, family,
                                rom_register=estimate.ROM_REGISTER[family])
    other = estimate.estimate_ffs(TFC, folding, 2, family,
                               rom_register=not estimate.ROM_REGISTER[family])
    assert default == chosen != other


def test_flip_flop_estimate_counts_buffers_wrapper_and_pipeline():
    model = random_model([16, 8, 4], seed=0)
    full = [LayerFold(8, 16), LayerFold(4, 8)]
    # Layer 0: 2x16 buffer registers and their flag, busy and a flag, 1+1 counter bits, 8
    # outputs; layer 1: 2x8 + 1, 4, 4x4; argmax register 2 + 16 + 1; wrapper 2x16 + 18 + 2.
    assert estimate.estimate_ffs(model, full) == (33 + 4 + 8) + (17 + 4 + 16) + 19 + 52
    assert estimate.estimate_ffs(model, full, pipeline=1) > estimate.estimate_ffs(model, full)


@pytest.mark.parametrize(("family", "lut4", "ff", "need"), [
    ("ice40", 2939, 4456, round(2939 + estimate.UNPACKED_FF_SHARE * 4456)),
    ("ecp5", 7723, 2501, 7723),
    ("ecp5", 1000, 3000, 3000),
])
def test_logic_need_counts_flip_flops(family, lut4, ff, need):
    assert estimate.logic_need(family, lut4, ff) == need


@pytest.mark.parametrize(("family", "by_type", "need"), [
    ("ice40", {"SB_LUT4": 2939, "SB_DFFESR": 4456, "SB_CARRY": 50},
     round(2939 + estimate.UNPACKED_FF_SHARE * 4456)),
    ("ecp5", {"LUT4": 7723, "TRELLIS_FF": 2501, "CCU2C": 230, "TRELLIS_DPR16X4": 4},
     7723 + 736 + 24),
    ("ecp5", {"LUT4": 1000, "TRELLIS_FF": 3000, "CCU2C": 10}, 3000),
])
def test_measured_need_applies_the_logic_rule_to_yosys_counts(family, by_type, need):
    assert estimate.measured_need(cell_counts(family, by_type)) == need


def test_estimated_brams_count_only_folded_layers():
    model = random_model([64, 32, 10], seed=0)
    assert estimate.estimate_brams(model, [LayerFold(32, 64), LayerFold(10, 32)], "ice40") == 0
    # Layer 0: 4x16 = 64-bit words, 8*4 = 32 deep -> 4 blocks of 256x16, and its input
    # memory, 2 banks of 4 words of 16 bits -> 1 block; layer 1: 32-bit words, 10 deep -> 2
    # blocks, its input (SIMD = K) in registers.
    folding = [LayerFold(4, 16), LayerFold(1, 32)]
    assert estimate.estimate_brams(model, folding, "ice40") == 4 + 1 + 2


@pytest.mark.parametrize(("family", "fold", "memory_brams"), [
    # 192-64-64-64-10 at II 256: input memories 8 x 48, 8 x 16, 8 x 16, 64 x 3 -> 3+1+1+1
    # SB_RAM40_4K (measured: 11 with the 5 ROMs); ECP5 keeps them in LUT RAM (measured).
    ("ice40", "1x48,1x16,1x16,1x3", 6), ("ecp5", "1x48,1x16,1x16,1x3", 0),
    # II 128: 4-word memories become flip-flops on iCE40 (measured), the 128 x 1 one a block.
    ("ice40", "1x96,1x32,1x32,5x1", 1),
])
def test_input_memories_count_where_yosys_puts_them(family, fold, memory_brams):
    folding = resolve_folding(TFC, fold)
    roms = sum(rom_blocks(family, w, d) for w, d in estimate._roms(TFC, folding)
               if not estimate_mvtu.rom_in_logic(family, w, d))
    assert estimate.estimate_brams_used(TFC, folding, family) == roms + memory_brams


@pytest.mark.parametrize(("family", "available", "expected"), [
    ("ecp5", 208, estimate.ECP5_ROUTABLE_BRAMS), ("ecp5", 56, 56), ("ice40", 30, 30)])
def test_routable_brams_caps_only_large_ecp5_devices(family, available, expected):
    assert estimate.routable_brams(family, available) == expected


@pytest.mark.parametrize(("family", "width", "depth", "in_luts"), [
    # Yosys' choices on generated designs (bench/memory_map.py): a 64-word ROM of 9 bits and
    # a 320-word one of 2 bits stay in LUTs (cheaper than a block), 216 x 16 bits does not.
    ("ice40", 9, 64, True), ("ice40", 2, 320, True), ("ice40", 16, 216, False),
    ("ice40", 32, 54, True), ("ecp5", 1, 240, True), ("ecp5", 11, 128, True),
    ("ecp5", 64, 1024, False), ("ice40", 64, 1, False)])
def test_roms_stay_in_luts_where_yosys_keeps_them(family, width, depth, in_luts):
    assert estimate_mvtu.rom_in_logic(family, width, depth) is in_luts


@pytest.mark.slow
@pytest.mark.parametrize(("widths", "fold", "pipeline"), [
    ([192, 64, 64, 64, 10], "1x48,1x16,1x16,1x3", 2),    # inputs in memory, chunked streams
    ([192, 64, 64, 64, 10], "1x24,1x8,1x8,1x2", 0),
    ([64, 64, 64, 64, 10], "1x64,1x64,1x64,5x2", 0),     # inputs in registers (SIMD = K)
])
def test_estimates_follow_yosys_on_the_generated_design(tmp_path, widths, fold, pipeline):
    # The design the estimate describes, generated from the same parameters and counted by
    # Yosys' synth_ice40 inside the synthesis wrapper (no nextpnr; about 20 s each). The
    # estimate counts every ROM of 128 words or more as block RAM; Yosys keeps a narrow one
    # in LUTs now and then (the safe side: one block RAM over at most).
    from amaranth.back import rtlil

    from bnnflow.boards.synth import SYNTH_TOP, _run_yosys
    from bnnflow.boards.tools import find_tool
    from bnnflow.boards.wrapper import SynthWrapper
    from bnnflow.hw.top import BnnTop

    model = random_model(widths, seed=0)
    folding = resolve_folding(model, fold)
    top = SynthWrapper(BnnTop(model, folding, pipeline))
    (tmp_path / "design.il").write_text(rtlil.convert(top, name=SYNTH_TOP))
    _, counts = _run_yosys(find_tool("yosys"), "ice40", tmp_path, tmp_path)
    assert estimate.estimate_ffs(model, folding, pipeline) == pytest.approx(counts.ff, rel=0.03)
    # The refitted LUT4 model (bench/unit_luts.py, 2026-12-06): +9.1, +11.4 and -9.1 % on these
    # three; on its 105 flattened iCE40 designs |error| 5.6 % on average, -31 to +16 %.
    assert estimate.estimate_luts(model, folding) == pytest.approx(counts.lut4, rel=0.15)
    assert counts.bram <= estimate.estimate_brams_used(model, folding, "ice40") <= counts.bram + 1
