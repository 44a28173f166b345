"""The resource model: LUT4, flip-flop, logic-cell and block RAM estimates, ROM depth rules."""

import pytest

from bnnflow.boards import estimate
from bnnflow.hw.folding import LayerFold, auto_fold, resolve_folding
from bnnflow.model.random_net import random_model

R64 = random_model([64, 64, 64, 64, 10], seed=0)


# Yosys 0.70 synth_ice40 counts of R64 inside the synthesis wrapper (pipeline 0), measured
# for the README; the estimates must stay within 10 % (LUT4) and 2 % (flip-flops).
@pytest.mark.parametrize(("ii", "lut4", "ff"), [(32, 3414, 1989), (64, 3188, 1799)])
def test_logic_estimates_match_measured_counts(ii, lut4, ff):
    fold, _ = auto_fold(R64, ii)
    assert estimate.estimate_luts(R64, fold) == pytest.approx(lut4, rel=0.10)
    assert estimate.estimate_ffs(R64, fold) == pytest.approx(ff, rel=0.02)


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
    # Layer 0: 2x16 buffers, 3 flags, 1+1+1 counter bits, 8 outputs; layer 1: 2x8, 6, 4x4;
    # argmax register 2 + 16 + 1; wrapper 2x16 + 18 + 2.
    assert estimate.estimate_ffs(model, full) == (32 + 6 + 8) + (16 + 6 + 16) + 19 + 52
    assert estimate.estimate_ffs(model, full, pipeline=1) > estimate.estimate_ffs(model, full)


@pytest.mark.parametrize(("family", "lut4", "ff", "carry", "need"), [
    ("ice40", 2939, 4456, 0, round(2939 + estimate.UNPACKED_FF_SHARE * 4456)),
    ("ecp5", 7723, 2501, 230, 7723 + 460),
    ("ecp5", 1000, 3000, 10, 3000),
])
def test_logic_need_counts_flip_flops(family, lut4, ff, carry, need):
    assert estimate.logic_need(family, lut4, ff, carry) == need


def test_estimated_brams_count_only_folded_layers():
    model = random_model([64, 32, 10], seed=0)
    assert estimate.estimate_brams(model, [LayerFold(32, 64), LayerFold(10, 32)], "ice40") == 0
    # Layer 0: 4x16 = 64-bit words, 8*4 = 32 deep -> 4 blocks of 256x16; layer 1: 32-bit
    # words, 10 deep -> 2 blocks.
    folding = [LayerFold(4, 16), LayerFold(1, 32)]
    assert estimate.estimate_brams(model, folding, "ice40") == 4 + 2


@pytest.mark.parametrize(("family", "available", "expected"), [
    ("ecp5", 208, estimate.ECP5_ROUTABLE_BRAMS), ("ecp5", 56, 56), ("ice40", 30, 30)])
def test_routable_brams_caps_only_large_ecp5_devices(family, available, expected):
    assert estimate.routable_brams(family, available) == expected


@pytest.mark.parametrize(("family", "depth", "in_luts"), [
    ("ecp5", 32, True), ("ecp5", 63, True), ("ecp5", 64, False), ("ecp5", 128, False),
    ("ice40", 64, True), ("ice40", 127, True), ("ice40", 128, False), ("ice40", 1, False)])
def test_rom_depth_where_yosys_moves_roms_to_block_ram(family, depth, in_luts):
    # Measured: ECP5 32-word ROMs in LUTs, 64 and 128 words in DP16KD; iCE40 from 128 words.
    assert estimate._rom_in_luts(family, depth) is in_luts
