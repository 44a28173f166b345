# amaranth: UnusedElaboratable=no
"""Pipelined popcount against numpy, over widths, register stages and clock-enable gaps."""

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from bnnflow.hw.popcount import STYLES, Popcount, register_levels
from bnnflow.model.conventions import pack_int


@pytest.mark.parametrize(("levels", "stages", "expected"), [
    (0, 0, []), (0, 2, [0, 0]), (6, 1, [6]), (6, 2, [3, 6]), (6, 3, [2, 4, 6]),
    (3, 5, [1, 2, 3, 3, 3]), (6, 6, [1, 2, 3, 4, 5, 6]),
])
def test_register_levels_spread_evenly_with_last_on_output(levels, stages, expected):
    assert register_levels(levels, stages) == expected


@pytest.mark.parametrize("style", list(STYLES))
@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 7, 8, 11, 37, 64, 100])
@pytest.mark.parametrize("stages", [0, 1, 2, 5])
def test_count_matches_numpy_after_latency_with_enable_gaps(width, stages, style):
    rng = np.random.default_rng(width * 10 + stages)
    vectors = rng.integers(0, 2, size=(40, width))
    vectors[0] = 1                      # all ones: the widest count
    vectors[1] = 0
    vectors[2, : width // 2] = 1        # ones in one half, then in the other
    vectors[3] = 1 - vectors[2]
    dut = Popcount(width, stages, style=style)
    got = []

    async def bench(ctx):
        # Shadow pipeline of what was presented on enabled edges; the output must equal the
        # count of the vector presented `stages` enabled edges ago.
        history = []
        for cycle in range(80):
            vec = vectors[cycle % len(vectors)]
            en = 1 if cycle < 40 else int(rng.random() < 0.5)
            ctx.set(dut.bits, pack_int(vec))
            ctx.set(dut.en, en)
            if stages == 0:
                got.append((int(ctx.get(dut.count)), int(vec.sum())))
            elif len(history) >= stages:
                got.append((int(ctx.get(dut.count)), history[-stages]))
            await ctx.tick()
            if en:
                history.append(int(vec.sum()))

    m = Module()
    m.domains.sync = ClockDomain()      # stages=0 has no registers; the bench still ticks
    m.submodules.dut = dut
    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) > 30
    counts, expected = np.array(got).T
    assert np.array_equal(counts, expected)
    assert dut.latency == stages
    assert len(dut.count) == width.bit_length()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"width": 0}, "width must be a positive integer, not 0"),
    ({"width": 3.0}, "width must be a positive integer, not 3.0"),
    ({"width": 4, "stages": -1}, "stages must be a non-negative integer, not -1"),
    ({"width": 4, "stages": True}, "stages must be a non-negative integer, not True"),
    ({"width": 4, "style": "ecp5"},
     "style must be one of 'generic', 'keep', not 'ecp5'"),
    ({"width": 4, "style": None}, "style must be one of 'generic', 'keep', not None"),
])
def test_bad_parameters_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        Popcount(**kwargs)


@pytest.mark.parametrize(("width", "levels"), [(1, 0), (2, 1), (3, 1), (4, 2), (5, 3), (6, 2),
                                               (37, 5), (64, 6)])
def test_levels_are_full_adder_level_plus_pairwise_tree(width, levels):
    assert Popcount(width).levels == levels


@pytest.mark.parametrize(("style", "kept"), [("generic", False), ("keep", True)])
def test_keep_attribute_only_on_adder_levels_of_keeping_styles(style, kept):
    from amaranth.back import rtlil

    text = rtlil.convert(Popcount(64, 2, style=style), name="pc")
    assert ("attribute \\keep" in text) == kept


@pytest.mark.parametrize("style", list(STYLES))
def test_full_adder_level_works_on_contiguous_slices(style):
    # The simulation-speed form: one XOR over whole slices of the input, not one per bit.
    from amaranth.back import verilog

    text = verilog.convert(Popcount(784, 2, style=style), name="pc", emit_src=False)
    assert "bits[260:0] ^ bits[521:261]" in text
    assert "bits[0] ^ bits[1]" not in text


@pytest.mark.parametrize("width", [3, 64, 784])
def test_styles_give_the_same_levels_and_ports(width):
    shapes = {style: (Popcount(width, 2, style=style).levels,
                      len(Popcount(width, 2, style=style).count)) for style in STYLES}
    assert len(set(shapes.values())) == 1


@pytest.mark.parametrize("style", list(STYLES))
@pytest.mark.parametrize("width", [5, 6, 9, 10])
def test_count_is_exact_for_every_input_of_small_widths(width, style):
    dut = Popcount(width, 0, style=style)
    got = []

    async def bench(ctx):
        for value in range(1 << width):
            ctx.set(dut.bits, value)
            got.append(int(ctx.get(dut.count)))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    expected = [bin(v).count("1") for v in range(1 << width)]
    assert np.array_equal(got, expected)
