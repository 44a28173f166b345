"""The shifts that carry an output layer's bias (model/qonnx_bias.py): for every pair of classes
and every pair of popcounts, ``M * p + t`` orders them as ``p + u`` does, ties to the lowest
index; ``M`` is the smallest that does (checked against every smaller one by brute force),
1 for whole popcounts, at most 2 for half ones and at most the number of distinct fractions;
a bias within the float rounding of a comparison gets one line. Carried by a hidden layer
(binary, ternary, 1- to 3-bit levels, with an offset too), widened or repeated, the golden
popcounts order every pair of classes as the graph's scores do."""

import dataclasses
import itertools
from fractions import Fraction

import numpy as np
import pytest
from onnx import helper

from bnnflow.model import golden
from bnnflow.model.artifact import DenseLayer
from bnnflow.model.qonnx_bias import (
    _bounds,
    _solve,
    _widened,
    _wins_from,
    carry_bias,
    class_bias,
    class_shifts,
    near_ties,
    widenings,
)
from bnnflow.model.qonnx_graph import QonnxError
from bnnflow.model.qonnx_offset import carry_offset, offset_grid
from bnnflow.model.random_net import random_conv_model, random_model

NODE = helper.make_node("MatMul", ["a", "w"], ["y"], name="out")


def _agrees(u, span, reads, shifts):
    """Every pair of classes at every pair of popcounts ``0..span`` decided alike (``u``'s
    floats as exact numbers)."""
    p = np.arange(span + 1)
    for c, d in itertools.permutations(range(len(u)), 2):
        gap = Fraction(u[d]) - Fraction(u[c])         # c wins iff p_c - p_d > gap, or ties first
        real = np.array([[k > gap or (k == gap and c < d) for k in row]
                         for row in (p[:, None] - p[None, :]).tolist()])
        ours = reads * p[:, None] + shifts[c]
        theirs = reads * p[None, :] + shifts[d]
        built = (ours > theirs) | ((ours == theirs) & (c < d))
        if not np.array_equal(real, built):
            return False
    return True


CASES = {"whole": lambda rng, n: rng.integers(-4, 5, n).astype(float),
         "halves": lambda rng, n: rng.integers(-8, 9, n) / 2,
         "thirds": lambda rng, n: rng.integers(-9, 10, n) / 3,
         "float": lambda rng, n: rng.normal(0, 1.5, n),
         "equal fractions": lambda rng, n: rng.integers(-3, 4, n) + 0.375,
         "wide": lambda rng, n: rng.normal(0, 30, n)}


@pytest.mark.parametrize("span", [1, 4, 9])
@pytest.mark.parametrize("classes", [2, 5, 7])
@pytest.mark.parametrize("kind", list(CASES))
@pytest.mark.parametrize("seed", range(4))
def test_shifts_decide_every_pair_as_the_bias_and_reads_are_fewest(seed, kind, classes, span):
    rng = np.random.default_rng(seed)
    u = CASES[kind](rng, classes)
    reads, shifts = class_shifts(NODE, u, span)
    assert shifts.dtype == np.int64 and shifts.min() == 0
    assert _agrees(u, span, reads, shifts)
    fractions = len({Fraction(x) % 1 for x in u})
    assert reads <= fractions
    if kind in ("whole", "equal fractions"):
        assert reads == 1
    if kind == "halves":
        assert reads <= 2
    # no fewer reads can do it: the solver proves each smaller system empty
    for fewer in range(1, reads):
        assert _solve(*_bounds(_wins_from(u), span, fewer)) is None


def test_a_solution_of_the_bounds_agrees_and_a_wrong_shift_does_not():
    u = np.array([0.25, -0.5, 0.75, 0.0])
    reads, shifts = class_shifts(NODE, u, 6)
    assert reads == 3 and _agrees(u, 6, reads, shifts)
    for c in range(len(u)):             # every shift is pinned: one more or less breaks a pair
        for step in (-1, 1):
            moved = shifts.copy()
            moved[c] += step
            assert not _agrees(u, 6, reads, moved)


def test_a_class_that_always_or_never_wins_costs_at_most_the_span():
    u = np.array([0.0, 100.0, -100.0])
    reads, shifts = class_shifts(NODE, u, 5)
    assert reads == 1 and _agrees(u, 5, reads, shifts)
    assert shifts.max() <= 2 * (5 + 1)


def test_a_bias_within_the_rounding_of_a_comparison_gets_one_line():
    # classes 0 and 1 tie exactly at popcounts 1 apart: their float sums may round either way
    with pytest.raises(QonnxError, match=r"^node out \(MatMul\): the last layer's classes 0 "
                                         r"and 1 come 0 apart at popcounts p0 - p1 = 1, within "
                                         r"the float rounding \(2e-05\) of adding their biases "
                                         r"0\.1 and 2\.1, which depends on the runtime's order "
                                         r"of additions; cannot import it exactly; quantize it "
                                         r"on the scale \(Brevitas: bias_quant=Int32Bias\) or "
                                         r"build the last layer without one "
                                         r"\(QuantLinear\(bias=False\)\)$"):
        near_ties(NODE, [0.1, 2.1, 0.7], 1.0, 1e-5, 10)
    near_ties(NODE, [0.1, 2.1, 0.7], 1.0, 0.0, 10)         # exact sums: ties are the graph's
    near_ties(NODE, [0.1, 2.1 + 1e-3, 0.7], 1.0, 1e-5, 10)  # 1e-3 clear of any tie
    near_ties(NODE, [0.1, 30.1, 0.7], 1.0, 1e-5, 10)       # the tie needs popcounts 15 apart
    # equal biases tie exactly when the runtime adds each once to an exact sum (an Add)
    with pytest.raises(QonnxError, match=r"classes 0 and 2 come 0 apart at popcounts p0 - p2 = "
                                         r"0, within the float rounding"):
        near_ties(NODE, [0.37, 1.0, 0.37], 1.0, 1e-5, 10)
    near_ties(NODE, [0.37, 1.0, 0.37], 1.0, 1e-5, 10, equal_tie=True)


def test_bias_shape_and_per_class_scales_get_one_line():
    with pytest.raises(QonnxError, match=r"the last layer's bias has 2 values for 3 classes$"):
        class_bias(NODE, np.ones(2), np.ones(3))
    with pytest.raises(QonnxError, match=r"scaled or shifted per class"):
        class_bias(NODE, np.ones(3), np.array([1.0, 2.0, 1.0]))
    assert np.array_equal(class_bias(NODE, 0.5, np.ones(3)), [0.5, 0.5, 0.5])
    with pytest.raises(QonnxError, match=r"the last layer's bias of class 1 is nan, not a "
                                         r"finite number$"):
        class_bias(NODE, np.array([0.0, np.nan, 1.0]), np.ones(3))


def _beats(scores):
    """Does class ``c`` win against ``d`` (argmax, lowest index on ties), per row?"""
    c = np.arange(scores.shape[1])
    return (scores[:, :, None] > scores[:, None, :]) | \
        ((scores[:, :, None] == scores[:, None, :]) & (c[:, None] < c[None, :]))


BIASES = {"whole": lambda rng, n: rng.integers(-3, 4, n) * 2.0,
          "steps": lambda rng, n: rng.integers(-3, 4, n) * 1.0,        # half popcounts
          "float": lambda rng, n: rng.normal(0, 2, n),
          "large": lambda rng, n: rng.normal(0, 80, n)}


def _carried(seed, bits, ternary, offset, beta, widen):
    """Graph scores (dot steps) and golden popcounts of random inputs through a random hidden
    layer and an output layer with bias ``beta`` (and ``offset``), carried as the import does."""
    rng = np.random.default_rng(seed)
    inputs, width, classes = 7, 5 + 2 * seed, len(beta)     # odd sizes: popcounts often tie
    hidden = random_model([inputs, width, 3], seed=seed, act_bits=bits,
                          ternary=ternary).layers[0]
    top = (1 << bits) - 1
    weights = rng.integers(0, 2, (classes, width), dtype=np.uint8)
    new_hidden, output = hidden, DenseLayer("fc_out", weights, None, in_bits=bits)
    if offset:
        new_hidden, output = carry_offset(NODE, hidden, output, offset)
    span = len(offset_grid(top, width, offset)) - 1
    (new_hidden,), output, note = carry_bias(NODE, [new_hidden], output, beta / 2, span, widen)
    x = rng.integers(0, 2, (400, inputs))
    levels = hidden.forward(x)[0]
    signs = 2 * weights.astype(np.int64) - 1
    scores = (2 * levels.astype(np.int64) - top + offset) @ signs.T + beta[None, :]
    return scores, output.forward(new_hidden.forward(x)[0])[1], new_hidden, note


@pytest.mark.parametrize("widen", [True, False], ids=["widen", "repeat"])
@pytest.mark.parametrize("ternary", [False, True])
@pytest.mark.parametrize("bits", [1, 2, 3])
@pytest.mark.parametrize("kind", list(BIASES))
@pytest.mark.parametrize("seed", range(3))
def test_a_carried_bias_orders_classes_as_the_scores(seed, kind, bits, ternary, widen):
    beta = BIASES[kind](np.random.default_rng(seed + 10), 6)   # dot steps: dot + beta
    scores, counts, hidden, note = _carried(seed, bits, ternary, 0, beta, widen)
    assert np.array_equal(_beats(counts), _beats(scores))
    assert np.array_equal(counts.argmax(axis=1), scores.argmax(axis=1))
    width = 5 + 2 * seed
    if note is None:                            # nothing to carry: the layer is unchanged
        assert hidden.out_width == width and hidden.activation_bits == bits
    elif "factor" in note:                      # one copy, levels `factor` times the old
        assert widen and hidden.out_width == width + note["count"]
        assert hidden.activation_bits == note["bits"]
        assert (1 << note["bits"]) - 1 == note["factor"] * ((1 << bits) - 1)
        if kind == "whole":
            assert note["factor"] == 1
    else:                                       # repeated: 3-bit levels have factors 1, 9
        assert not widen or bits == 3
        assert hidden.out_width == note["reads"] * width + note["count"]
        assert hidden.activation_bits == bits


@pytest.mark.parametrize("widen", [True, False], ids=["widen", "repeat"])
@pytest.mark.parametrize(("bits", "offset"), [(1, 1), (2, 3), (2, -1), (3, 7)])
@pytest.mark.parametrize("seed", range(3))
def test_an_offset_and_a_float_bias_together(seed, bits, offset, widen):
    """The offset's constant neurons first, then the bias's; widening multiplies both."""
    beta = np.random.default_rng(seed).normal(0, 3, 6)
    scores, counts, _, note = _carried(seed, bits, False, offset, beta, widen)
    assert np.array_equal(_beats(counts), _beats(scores))
    assert ("factor" in note) == widen          # 6 classes: a factor of 9 or less does it


@pytest.mark.parametrize(("ternary", "act_bits"), [(False, 1), (True, 1), (False, 2)])
@pytest.mark.parametrize("stages", [[("conv", 3, 3)], [("conv", 2, 2), ("pool", 2)],
                                    [("conv", 3, 2), ("pool", 2, 1), ("pool", 2)]],
                         ids=["conv", "conv-pool", "conv-pool-pool"])
@pytest.mark.parametrize("kind", ["float", "large"])
@pytest.mark.parametrize("seed", range(3))
def test_a_bias_after_a_map_is_carried_by_constant_channels(seed, kind, stages, ternary,
                                                            act_bits):
    """Maps are widened to n-bit levels (binary: 0 or 2**n - 1; 2-bit: 5 or 21 times), and
    constant channels added to the conv layer (the pools after it widened and grown alike);
    the output reads the map channels-last."""
    model = random_conv_model((6, 5, 2), stages, 5, seed=seed, ternary=ternary,
                              act_bits=act_bits)
    tail, output = list(model.layers[:-1]), model.layers[-1]
    top = (1 << act_bits) - 1
    beta = BIASES[kind](np.random.default_rng(seed), 5)
    span = top * output.in_width
    tail, new_output, note = carry_bias(NODE, tail, output, beta / 2, span)
    assert note["layer"] == "conv0" and note["channels"] >= 1
    new = dataclasses.replace(model, layers=(*tail, new_output))
    x = np.random.default_rng(seed).integers(0, 2, (300, model.input.width))
    levels = golden.run(model, x).activations[-1]           # what the output layer reads
    signs = 2 * output.weights.astype(np.int64) - 1
    scores = (2 * levels.astype(np.int64) - top) @ signs.T + beta[None, :]
    counts = golden.run(new, x).popcounts
    assert np.array_equal(_beats(counts), _beats(scores))
    assert tail[-1].out_shape[2] == model.layers[-2].out_shape[2] + note["channels"]
    assert tail[0].activation_bits == note["bits"] == new_output.in_bits


def test_a_bias_after_the_input_or_an_unwidenable_map_gets_one_line():
    output = DenseLayer("fc_out", np.random.default_rng(0).integers(0, 2, (3, 9),
                                                                     dtype=np.uint8), None)
    with pytest.raises(QonnxError, match=r"^node out \(MatMul\): the last layer has a bias and "
                                         r"reads the input; the bias is carried by constant "
                                         r"neurons of a hidden layer, so put a layer before the "
                                         r"output$"):
        carry_bias(NODE, [], output, np.array([0.0, 1.0, 2.0]), 10)
    # equal biases move no class: nothing to carry, nothing refused
    assert carry_bias(NODE, [], output, np.array([0.5, 0.5, 0.5]), 10) == ([], output, None)
    # 5-bit levels cannot be widened within 8 bits (2**n - 1 = 31 * M): a map is refused
    levels = random_conv_model((5, 5, 1), [("conv", 3, 2)], 3, seed=0, act_bits=5)
    with pytest.raises(QonnxError, match=r"^node out \(MatMul\): the last layer's bias needs "
                                         r"its inputs read 2 times, which is imported after a "
                                         r"dense hidden layer only when its levels cannot be "
                                         r"widened by that much within 8 bits; quantize it"):
        carry_bias(NODE, levels.layers[:1], levels.layers[1], np.array([0.0, 0.5, 2.0]),
                   31 * 18)


def test_widened_levels_are_the_old_ones_times_the_factor():
    assert widenings(1) == {1: 1, 3: 2, 7: 3, 15: 4, 31: 5, 63: 6, 127: 7, 255: 8}
    assert widenings(2) == {1: 2, 5: 4, 21: 6, 85: 8}
    assert widenings(3) == {1: 3, 9: 6} and widenings(5) == {1: 5}
    x = np.random.default_rng(0).integers(0, 2, (200, 9))
    for bits in (1, 2, 3):
        for ternary in (False, True):
            model = random_conv_model((4, 4, 2), [("conv", 3, 2), ("pool", 2)], 3, seed=bits,
                                      act_bits=bits, ternary=ternary)
            dense = random_model([9, 7, 3], seed=bits, act_bits=bits,
                                 ternary=ternary).layers[0]
            for factor, wide in widenings(bits).items():
                assert np.array_equal(_widened([dense], factor, wide)[0].forward(x)[0],
                                      factor * dense.forward(x)[0])
                tail = _widened(list(model.layers[:2]), factor, wide)
                maps = np.random.default_rng(1).integers(0, 2, (50, 32))
                old = model.layers[1].forward(model.layers[0].forward(maps)[0])[0]
                new = tail[1].forward(tail[0].forward(maps)[0])[0]
                assert tail[1].bits == wide and np.array_equal(new, factor * old)
