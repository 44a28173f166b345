# amaranth: UnusedElaboratable=no

"""The out-of-context wrapper keeps the network's function: bits in serially, results out."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from bnnflow.boards.wrapper import SynthWrapper
from bnnflow.hw.top import BnnTop
from bnnflow.model import golden
from bnnflow.model.random_net import random_model


@pytest.mark.parametrize(("widths", "folding"),
                         [([16, 8, 4], None), ([13, 5, 3], [(2, 4), (1, 5)])])
def test_wrapper_shifts_images_through_the_network(widths, folding):
    model = random_model(widths, seed=7)
    bnn = BnnTop(model, folding)
    dut = SynthWrapper(bnn)
    bits = np.random.default_rng(1).integers(0, 2, size=(3, widths[0]), dtype=np.uint8)
    expected = golden.run(model, bits)
    w_out = bnn.out_width
    got = []

    async def bench(ctx):
        for row in bits:
            for bit in row:                     # input bit 0 first
                ctx.set(dut.sin, int(bit))
                ctx.set(dut.shift_in, 1)
                await ctx.tick()
            ctx.set(dut.shift_in, 0)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            await ctx.tick().until(dut.done)
            word = 0
            for i in range(w_out):
                word |= ctx.get(dut.sout) << i
                ctx.set(dut.out_shift, 1)
                await ctx.tick()
            ctx.set(dut.out_shift, 0)
            got.append(word)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    cw, pw = bnn.class_width, bnn.popcount_width
    classes = [w & ((1 << cw) - 1) for w in got]
    counts = [[(w >> (cw + c * pw)) & ((1 << pw) - 1) for c in range(bnn.num_classes)]
              for w in got]
    assert np.array_equal(classes, expected.classes)
    assert np.array_equal(counts, expected.popcounts)


def test_wrapper_needs_a_bnn_top():
    with pytest.raises(TypeError, match=r"^bnn must be a BnnTop, not 3$"):
        SynthWrapper(3)
