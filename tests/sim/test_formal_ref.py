"""The combinational golden model of the proofs equals the numpy golden model."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from bnnflow.model import golden
from bnnflow.model.random_net import random_conv_model, random_model
from bnnflow.sim.formal_ref import lane_width, layer_logic, network_logic


def _simulate(width, build, vectors):
    """Values of the logic ``build(bits)`` for each input vector, settled combinationally."""
    x = Signal(width)
    out = Signal(len(build([x[i] for i in range(width)])))
    m = Module()
    m.d.comb += out.eq(build([x[i] for i in range(width)]))
    results = []

    async def bench(ctx):
        for v in vectors:
            ctx.set(x, int("".join(str(int(b)) for b in v[::-1]), 2))
            results.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return results


def _unpack(value, count, width):
    return [(value >> (i * width)) & ((1 << width) - 1) for i in range(count)]


MODELS = {
    "dense 7-5-3": lambda: random_model([7, 5, 3], seed=1),
    "dense 6-3": lambda: random_model([6, 3], seed=2),
    "ternary 9-6-4-3": lambda: random_model([9, 6, 4, 3], seed=6, ternary=True),
    "2-bit 7-5-4-3": lambda: random_model([7, 5, 4, 3], seed=7, act_bits=2),
    "ternary 2-bit 6-5-3": lambda: random_model([6, 5, 3], seed=8, ternary=True, act_bits=2),
    "conv": lambda: random_conv_model((5, 4, 2), [("conv", 3, 2, 3), ("pool", 2)], 3, seed=3),
    "conv pool stride": lambda: random_conv_model((5, 5, 1), [("conv", 2, 2), ("pool", 3, 2),
                                                              ("dense", 4)], 2, seed=4),
    "ternary conv": lambda: random_conv_model((5, 4, 2), [("conv", 3, 2, 3), ("pool", 2),
                                                          ("dense", 4)], 3, seed=5, ternary=True),
    "8-bit conv": lambda: random_conv_model((4, 3, 2), [("conv", 2, 2), ("dense", 3)], 2,
                                            seed=6, input_bits=8),
    # The output layer reads the pooled 2-bit levels; a hidden dense layer between them
    # (covered by "2-bit 7-5-4-3") made Amaranth's simulator compile for 45 s.
    "2-bit conv pool": lambda: random_conv_model((5, 4, 1), [("conv", 2, 2), ("pool", 2)], 2,
                                                 seed=8, act_bits=2),
    "ternary 8-bit conv": lambda: random_conv_model((3, 4, 1), [("conv", 2, 2, 3)], 2, seed=7,
                                                    ternary=True, input_bits=8),
    # Padding: code 1 at stride 2 before a pool; an 8-bit ternary conv bordered by code 201.
    "padded conv": lambda: random_conv_model((4, 3, 2), [("conv", 2, 3, 3, 2, 1, 1),
                                                         ("pool", 2)], 2, seed=9),
    "padded 8-bit ternary conv": lambda: random_conv_model(
        (2, 3, 1), [("conv", 2, 2, 2, 1, 1, 201)], 2, seed=10, ternary=True, input_bits=8),
}


def _levels(model, rng, count):
    """Input elements (bits, or ``n``-bit levels) and the same as bits, element ``j`` at
    ``[j*n, (j+1)*n)``."""
    n = model.input.bits
    x = rng.integers(0, 1 << n, size=(count, model.input.width))
    return x, ((x[:, :, None] >> np.arange(n)) & 1).reshape(count, -1)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_network_logic_is_the_golden_model(name):
    model = MODELS[name]()
    x, packed = _levels(model, np.random.default_rng(0), 40)
    want = golden.run(model, x)
    got = _simulate(packed.shape[1], lambda bits: network_logic(model, bits), packed)
    cw = max(1, (model.num_classes - 1).bit_length())
    pw = lane_width(model.layers[-1])
    assert np.array_equal([g & ((1 << cw) - 1) for g in got], want.classes)
    scores = [_unpack(g >> cw, model.num_classes, pw) for g in got]
    assert np.array_equal(scores, want.popcounts)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_layer_logic_is_its_forward_step(name):
    model = MODELS[name]()
    x, _ = _levels(model, np.random.default_rng(1), 30)
    for layer in model.layers:
        width = lane_width(layer)
        n = layer.in_bits
        # n-bit inputs as their bits, element j at [j*n, (j+1)*n), LSB first.
        packed = ((x[:, :, None] >> np.arange(n)) & 1).reshape(len(x), -1)
        got = _simulate(layer.in_width * n,
                        lambda bits, layer=layer, width=width: _cat(layer_logic(layer, bits),
                                                                    width), packed)
        want, counts = layer.forward(x)
        want = counts if layer.is_output else want
        assert np.array_equal([_unpack(g, layer.out_width, width) for g in got], want)
        x = want


def _cat(elements, width):
    from bnnflow.sim.formal_ref import flatten

    return flatten(elements, width)


def test_unknown_kind_is_refused():
    class Odd:
        kind = "quaternary_dense"
        is_output = True

    with pytest.raises(ValueError, match="no formal reference for layer kind 'quaternary_dense'"):
        layer_logic(Odd(), [])


def test_window_logic_is_the_windows_of_the_numpy_reference():
    from bnnflow.model import conventions
    from bnnflow.sim.formal_ref import window_logic

    for stage in [("conv", 3, 2, 3), ("conv", 3, 3, 2, 2, 1, 1)]:
        model = random_conv_model((4, 5, 2), [stage], 2, seed=5)
        layer = model.layers[0]
        x = np.random.default_rng(2).integers(0, 2, size=(20, layer.in_width), dtype=np.uint8)
        got = _simulate(layer.in_width, lambda bits, layer=layer: _cat(window_logic(layer, bits),
                                                                        1), x)
        want = conventions.windows(x, layer.in_shape, layer.kernel,
                                   **layer.geometry).reshape(len(x), -1)
        n = want.shape[1]
        assert np.array_equal([_unpack(g, n, 1) for g in got], want)
