# amaranth: UnusedElaboratable=no
"""The max-pool unit against the golden OR pool, with stalls on both sides."""

import numpy as np
import pytest

from bnnflow.hw.maxpool import MaxPool
from bnnflow.hw.testbench import fields_of, simulate_stream
from bnnflow.model import conventions


def pixels_of(maps, shape):
    c = shape[2]
    return [conventions.pack_int(m[p * c:(p + 1) * c]) for m in maps
            for p in range(shape[0] * shape[1])]


@pytest.mark.parametrize("shape, window, stride", [
    ((4, 4, 1), 2, 2), ((5, 7, 3), 2, 2), ((9, 9, 10), 3, 3), ((7, 8, 2), 3, 3),
    ((6, 6, 19), 2, 2), ((3, 3, 1), 3, 3), ((4, 5, 2), 1, 1), ((2, 9, 4), 2, 2),
    ((6, 6, 2), 4, 4), ((9, 9, 3), 4, 4), ((7, 11, 1), 5, 5),
    # Overlapping windows: 2, 3 or 5 open at once, odd maps, a window of the map's height.
    ((5, 7, 3), 2, 1), ((9, 8, 2), 3, 2), ((7, 9, 1), 3, 1), ((8, 7, 5), 5, 2),
    ((6, 11, 2), 5, 3), ((3, 6, 1), 3, 2), ((10, 9, 3), 4, 3)])
@pytest.mark.parametrize("stalls", [(1.0, 1.0), (0.5, 0.6)])
def test_pool_matches_the_golden_or(shape, window, stride, stalls):
    rng = np.random.default_rng(sum(shape) * window + stride)
    # Sparse ones, so that an OR of zeros and a missed pixel both show.
    maps = (rng.random((3, int(np.prod(shape)))) < 0.15).astype(np.uint8)
    dut = MaxPool(shape, window, stride=stride)
    run = simulate_stream(dut, pixels_of(maps, shape), expected_outputs=3 * dut.outputs,
                          seed=window + shape[2], p_valid=stalls[0], p_ready=stalls[1])
    want = conventions.maxpool_or(maps, shape, window, stride).reshape(-1, shape[2])
    assert np.array_equal(fields_of(run.outputs, shape[2]), want)


@pytest.mark.parametrize("shape, window, stride", [((7, 6, 3), 3, 2), ((6, 5, 2), 2, 1),
                                                    ((5, 5, 4), 2, 2)])
def test_pool_of_levels_takes_the_largest(shape, window, stride):
    bits = 2
    rng = np.random.default_rng(window * 7 + stride)
    levels = rng.integers(0, 4, size=(3, int(np.prod(shape))))
    dut = MaxPool(shape, window, bits, stride)
    words = [sum(int(v) << (bits * e) for e, v in enumerate(m[p * shape[2]:(p + 1) * shape[2]]))
             for m in levels for p in range(shape[0] * shape[1])]
    run = simulate_stream(dut, words, expected_outputs=3 * dut.outputs, seed=3, p_valid=0.6,
                          p_ready=0.5)
    got = np.array([[(v >> (bits * e)) & 3 for e in range(shape[2])] for v in run.outputs])
    want = conventions.maxpool_or(levels, shape, window, stride).reshape(-1, shape[2])
    assert np.array_equal(got, want)


def test_full_rate_and_latency():
    shape = (4, 6, 2)
    dut = MaxPool(shape, 2)
    maps = np.random.default_rng(1).integers(0, 2, (2, 48), dtype=np.uint8)
    run = simulate_stream(dut, pixels_of(maps, shape), expected_outputs=2 * dut.outputs)
    assert np.diff(run.in_edges).tolist() == [1] * (len(run.in_edges) - 1)
    completing = [img * 24 + r * 6 + c for img in range(2) for r in (1, 3) for c in (1, 3, 5)]
    assert [run.in_edges[p] + 1 for p in completing] == run.out_edges


def test_bad_parameters():
    with pytest.raises(ValueError, match=r"pool window 4 does not fit a 3x5 map"):
        MaxPool((3, 5, 1), 4)


@pytest.mark.parametrize("stride", [0, 3, 1.0])
def test_a_stride_outside_one_to_the_window_is_refused(stride):
    with pytest.raises(ValueError, match=r"pool stride must be an integer in 1\.\.2 \(the "
                                         rf"window\), not {stride!r}"):
        MaxPool((5, 5, 1), 2, stride=stride)


def test_overlapping_windows_keep_one_register_and_line_memory_per_open_window():
    assert [MaxPool((9, 9, 1), k, stride=s).slots for k, s in ((2, 2), (2, 1), (3, 2), (3, 1),
                                                               (5, 2))] == [1, 2, 2, 3, 3]
    dut = MaxPool((9, 8, 3), 3, 2, 2)
    assert dut.out_shape == (4, 3, 3)
    assert dut.sidecar()["line_bits"] == 2 * 3 * 3 * 2
