"""Where Yosys puts a memory: the cost rule against Yosys' own choices."""

import runpy
from pathlib import Path

import pytest

from bnnflow.boards.memory_map import Placement, placement


@pytest.mark.parametrize(("family", "width", "depth", "rom", "transparent", "expected"), [
    # Costs Yosys' memory_libmap printed (debug) for a 27 x 5 RAM: logic 135; iCE40 two
    # blocks 128 + emulation (read-old 7 points: 142, transparent 4: 136); ECP5 LUT RAM 7
    # cells 28 + 2 (+ 6 transparent).
    ("ice40", 27, 5, False, False, Placement("logic")),
    ("ice40", 27, 5, False, True, Placement("logic")),
    ("ecp5", 27, 5, False, False, Placement("lutram", "TRELLIS_DPR16X4", 7)),
    ("ecp5", 27, 5, False, True, Placement("lutram", "TRELLIS_DPR16X4", 7)),
    # A ROM costs 1/16 per bit in logic and takes no LUT RAM: 2 x 320 stays in logic, 16 x 216
    # takes one 256 x 16 block; on ECP5 a DP16KD costs 128 + 2.
    ("ice40", 2, 320, True, False, Placement("logic")),
    ("ice40", 16, 216, True, False, Placement("bram", "SB_RAM40_4K", 1)),
    ("ice40", 32, 54, True, False, Placement("logic")),
    ("ecp5", 64, 1024, True, False, Placement("bram", "DP16KD", 4)),
    ("ecp5", 11, 128, True, False, Placement("logic")),
    # Line memories (transparent): 24 x 7 in two blocks (136 < 168); 4 x 15 in flip-flops.
    ("ice40", 24, 7, False, True, Placement("bram", "SB_RAM40_4K", 2)),
    ("ice40", 4, 15, False, True, Placement("logic")),
    # A wide, deep queue on ECP5: four 512 x 36 blocks beat 4 x 36 LUT RAM cells and muxes.
    ("ecp5", 144, 60, False, False, Placement("bram", "PDPW16KD", 4)),
    # Input memories: 6 x 8 and 1 x 64 stay in flip-flops on iCE40, 4 x 64 takes a block.
    ("ice40", 6, 8, False, False, Placement("logic")),
    ("ice40", 1, 64, False, False, Placement("logic")),
    ("ice40", 4, 64, False, False, Placement("bram", "SB_RAM40_4K", 1)),
])
def test_placement_follows_yosys_costs(family, width, depth, rom, transparent, expected):
    assert placement(family, width, depth, rom=rom, transparent=transparent) == expected


def test_memories_whose_reads_and_writes_never_meet_emulate_nothing():
    # A pixel window's ring (no_rw_check): an 8 x 9 RAM costs 72 in logic, 64 + 14 in a block
    # with read-old emulation, 64 + 2 without.
    assert placement("ice40", 8, 9) == Placement("logic")
    assert placement("ice40", 8, 9, no_rw_check=True) == Placement("bram", "SB_RAM40_4K", 1)


def test_an_unknown_family_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"^family must be one of ice40, ecp5, not 'gowin'$"):
        placement("gowin", 8, 8)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_every_memory_of_a_generated_conv_design_goes_where_yosys_puts_it(family):
    # The real tool on a design with every memory kind: weight ROMs, input memories, line
    # memories, window queues, a pad queue, pool lines and a pixel window's ring (about 10 s
    # per family).
    from bnnflow.boards.estimate import ROM_REGISTER
    from bnnflow.hw.folding import resolve_folding
    from bnnflow.hw.top import BnnTop
    from bnnflow.model.random_net import random_conv_model

    bench = runpy.run_path(str(Path(__file__).parents[2] / "bench" / "memory_map.py"))
    model = random_conv_model((14, 14, 3), [("conv", 8, 3, 3, 1, 1), ("pool", 2),
                                            ("conv", 16, 3, 3, 1, 1, 0), ("pool", 2),
                                            ("dense", 32)], 10, seed=0)
    bnn = BnnTop(model, resolve_folding(model, "auto", 1024), 0,
                 rom_register=ROM_REGISTER[family])
    memories = [m for m in bench["yosys_memories"](bnn, family) if m["yosys"] != "table"]
    seen = [(m["memory"], placement(family, m["width"], m["depth"], rom=m["rom"],
                                    transparent=m["transparent"],
                                    no_rw_check=m["no_rw_check"]).cell, m["yosys"])
            for m in memories]
    assert len(seen) >= 12 and {cell for _, cell, _ in seen} > {None}
    assert any(m["no_rw_check"] for m in memories)
    assert [(n, c) for n, c, _ in seen] == [(n, y) for n, _, y in seen]
