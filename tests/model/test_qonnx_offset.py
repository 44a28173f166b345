"""The constant neurons that carry an output layer's per-class offset (levels ``(s / 2) * (v +
d)`` before it: unsigned ``d = L``, signed without narrow range ``d = -1``, any integer from a
MultiThreshold): with them the golden popcounts are the graph's scores plus one constant shared
by every class, for binary and ternary hidden layers of 1- to 3-bit levels; a map before the
output gets one line. (The same neurons carry a bias of the output layer:
tests/model/test_qonnx_bias.py.)"""

import itertools
import math

import numpy as np
import pytest
from onnx import helper

from bnnflow.model.artifact import DenseLayer
from bnnflow.model.qonnx_graph import QonnxError
from bnnflow.model.qonnx_offset import carry_offset, offset_grid
from bnnflow.model.random_net import random_conv_model, random_model

NODE = helper.make_node("MatMul", ["a", "w"], ["y"], name="out")


def _output(rng, classes, inputs, bits):
    return DenseLayer("fc_out", rng.integers(0, 2, (classes, inputs), dtype=np.uint8), None,
                      in_bits=bits)


@pytest.mark.parametrize("ternary", [False, True])
@pytest.mark.parametrize(("bits", "offset"), [(1, 1), (1, -1), (2, 3), (2, -1), (2, 1), (2, 2),
                                              (3, 7), (3, -1), (3, 6), (3, -7)])
@pytest.mark.parametrize("seed", range(3))
def test_popcounts_are_the_offset_scores_plus_one_constant(seed, bits, offset, ternary):
    rng = np.random.default_rng(seed)
    inputs, width, classes = 11, 9 + 2 * seed, 5             # odd sizes
    hidden = random_model([inputs, width, 3], seed=seed, act_bits=bits,
                          ternary=ternary).layers[0]
    output = _output(rng, classes, width, bits)
    top = (1 << bits) - 1
    new_hidden, new_output = carry_offset(NODE, hidden, output, offset)
    unit = math.gcd(abs(offset), top)
    positives = output.weights.sum(axis=1)
    extra = abs(offset // unit) * int(positives.max() - positives.min())
    assert new_hidden.out_width == width + extra == new_output.in_width
    x = rng.integers(0, 2, (300, inputs))
    levels = hidden.forward(x)[0]
    # the graph's scores in units of s / 2: sum_j w_j * (v_j + d)
    signs = 2 * output.weights.astype(np.int64) - 1
    scores = (2 * levels.astype(np.int64) - top + offset) @ signs.T
    new_levels = new_hidden.forward(x)[0]
    assert np.array_equal(new_levels[:, :width], levels)
    assert np.all(new_levels[:, width:] == (unit + top) // 2)          # constant level
    counts = new_output.forward(new_levels)[1]
    shift = 2 * counts - scores
    assert np.all(shift == shift[:1, :1])
    assert np.array_equal(counts.argmax(axis=1), scores.argmax(axis=1))


def test_equal_positive_counts_need_no_neurons():
    hidden = random_model([6, 5, 3], seed=0, act_bits=2).layers[0]
    output = DenseLayer("fc_out", np.array([[1, 0, 1, 0, 0], [0, 0, 0, 1, 1]], np.uint8), None,
                        in_bits=2)
    assert carry_offset(NODE, hidden, output, 3) == (hidden, output)


@pytest.mark.parametrize(("top", "offset"), [(1, 0), (1, 1), (3, 3), (3, -1), (7, 7)])
def test_offset_grid_holds_every_dot_plus_offset(top, offset):
    inputs = 3
    reached = set()
    for levels in itertools.product(range(top + 1), repeat=inputs):
        for signs in itertools.product((-1, 1), repeat=inputs):
            dot = sum(w * (2 * a - top) for w, a in zip(signs, levels, strict=True))
            reached.add(dot + offset * sum(signs))
    grid = offset_grid(top, inputs, offset)
    assert reached <= set(grid.tolist()) and np.all(np.diff(grid) == 2)
    assert grid[0] == min(reached) and grid[-1] == max(reached)


def test_a_map_before_the_output_gets_one_line():
    conv = random_conv_model((5, 5, 1), [("conv", 3, 2)], 3, seed=0, act_bits=2).layers[0]
    output = _output(np.random.default_rng(0), 3, conv.out_width, 2)
    with pytest.raises(QonnxError, match=r"^node out \(MatMul\): reads levels with an offset "
                                         r"\(unsigned, or signed without narrow range\) of a "
                                         r"map; .* put a dense layer before the output$"):
        carry_offset(NODE, conv, output, 3)
