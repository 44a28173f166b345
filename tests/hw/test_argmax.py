# amaranth: UnusedElaboratable=no
"""Argmax unit: lowest index on ties, scores passed through, under random stalls."""

import numpy as np
import pytest

from bnnflow.hw.argmax import Argmax, argmax_levels, class_width, register_rows
from bnnflow.hw.testbench import fields_of, simulate_stream
from bnnflow.model import conventions
from bnnflow.model.conventions import pack_int


@pytest.mark.parametrize(("count", "expected"), [(1, 1), (2, 1), (3, 2), (4, 2), (10, 4),
                                                 (16, 4), (17, 5)])
def test_class_width_is_ceil_log2_at_least_one(count, expected):
    assert class_width(count) == expected


@pytest.mark.parametrize(("count", "stages"), [(1, 0), (2, 0), (3, 0), (3, 1), (10, 0),
                                               (10, 1), (10, 2), (10, 3), (13, 2)])
@pytest.mark.parametrize(("p_valid", "p_ready", "seed"), [(1.0, 1.0, 0), (0.5, 0.6, 1),
                                                          (0.8, 0.3, 2)])
def test_class_is_lowest_index_of_maximum_under_stalls(count, stages, p_valid, p_ready, seed):
    rng = np.random.default_rng(seed)
    width = 3                                     # small scores: many ties
    scores = rng.integers(0, 2 ** width, size=(30, count))
    scores[0] = 5                                 # all tied: class 0
    dut = Argmax(count, width, stages)
    cw = dut.class_width
    run = simulate_stream(dut, [pack_int(s, width) for s in scores], seed=seed,
                          p_valid=p_valid, p_ready=p_ready)
    classes = fields_of(run.outputs, 1, cw)[:, 0]
    passed = fields_of(run.outputs, count, width, lsb=cw)
    assert np.array_equal(classes, conventions.argmax_lowest(scores))
    assert np.array_equal(passed, scores)
    if p_valid == 1.0 and p_ready == 1.0:
        assert np.array_equal(np.diff(run.out_edges), np.ones(len(scores) - 1))
        assert run.out_edges[0] - run.in_edges[0] == dut.latency == 1 + stages


@pytest.mark.parametrize(("levels", "stages", "rows"), [(4, 0, []), (4, 1, [2]), (4, 2, [1, 2]),
                                                        (4, 3, [1, 2, 3]), (3, 1, [1]),
                                                        (5, 2, [1, 3])])
def test_inner_registers_are_spread_evenly_over_the_rows(levels, stages, rows):
    assert register_rows(levels, stages) == rows


@pytest.mark.parametrize(("count", "levels"), [(1, 0), (2, 1), (3, 2), (4, 2), (10, 4), (17, 5)])
def test_levels_is_ceil_log2_of_count(count, levels):
    assert argmax_levels(count) == levels == Argmax(count, 2).levels


@pytest.mark.parametrize(("args", "message"), [
    ((0, 3), "^count must be a positive integer, not 0$"),
    ((3, 0), "^width must be a positive integer, not 0$"),
    ((True, 3), "^count must be a positive integer, not True$"),
    ((10, 3, 4), r"^stages must be an integer in 0\.\.3, not 4$"),
    ((1, 3, 1), r"^stages must be an integer in 0\.\.0, not 1$"),
    ((10, 3, -1), r"^stages must be an integer in 0\.\.3, not -1$"),
    ((10, 3, True), r"^stages must be an integer in 0\.\.3, not True$"),
])
def test_bad_parameters_raise_value_error(args, message):
    with pytest.raises(ValueError, match=message):
        Argmax(*args)
