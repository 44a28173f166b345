"""The float rounding bounds of the import (:mod:`bnnflow.model.qonnx_fold`): a float32 sum of
+-1-weighted levels times a power-of-two scale plus a float bias, added in any order, stays
within :func:`bias_margin` of the exact value."""

import numpy as np
import pytest

from bnnflow.model.qonnx_fold import bias_margin, granule


def _float32_sum(values, bias, order, where):
    """``bias`` and ``values`` added one at a time in float32, the bias at position ``where``
    of the permuted values."""
    terms = [np.float32(v) for v in np.asarray(values)[order]]
    terms.insert(where, np.float32(bias))
    total = np.float32(0.0)
    for t in terms:
        total = np.float32(total + t)
    return float(total)


@pytest.mark.parametrize(("scale", "top", "inputs"), [(1.0, 1, 64), (0.25, 3, 48), (2.0, 15, 40),
                                                      (0.5, 255, 27)])
@pytest.mark.parametrize("seed", range(3))
def test_biased_sums_in_any_order_stay_within_the_margin(scale, top, inputs, seed):
    rng = np.random.default_rng(seed)
    size = top * inputs
    worst = 0.0
    for _ in range(40):
        bias = float(np.float32(rng.normal() * 4))
        levels = rng.integers(0, top + 1, inputs)
        signs = rng.choice([-1, 1], inputs)
        values = signs * (2 * levels - top) * scale           # exact in float32
        exact = bias + float(values.sum())
        margin = float(bias_margin(scale, bias, size, inputs))
        for _ in range(5):
            order = rng.permutation(inputs)
            got = _float32_sum(values, bias, order, int(rng.integers(0, inputs + 1)))
            worst = max(worst, abs(got - exact))
            assert abs(got - exact) <= margin
    assert worst > 0                                          # the bias did round somewhere


def test_a_scale_that_is_not_a_power_of_two_gets_the_general_bound():
    got = bias_margin(0.1, 0.5, 64, 64)
    assert got == pytest.approx(64 * (0.5 + 6.4) * 2.0 ** -23)
    assert bias_margin(1.0, 0.1, 64, 64) == 2 * 2.0 ** (6 - 23)


def test_zero_bias_adds_nothing_and_a_fractional_offset_gets_the_general_bound():
    got = bias_margin(1.0, np.array([0.0, 0.1]), 64, 64)
    assert got[0] == 0.0 and got[1] == 2 * 2.0 ** (6 - 23)
    # products that are not integer multiples of the scale (an input offset d = L + 0.5)
    assert bias_margin(1.0, 0.5, 64, 64, grid=False) == pytest.approx(64 * 64.5 * 2.0 ** -23)


@pytest.mark.parametrize(("scale", "top", "inputs"), [(1.0, 1, 64), (0.25, 3, 48), (2.0 ** -6, 15,
                                                                                   400)])
@pytest.mark.parametrize("step", [1, 1 / 8], ids=["on-scale", "eighths"])
def test_a_bias_on_the_grid_sums_exactly_in_any_order(scale, top, inputs, step):
    """Brevitas' Int32Bias: bias = k * scale, so every partial sum is a multiple of the scale
    that float32 holds: no margin, and none is needed. So with eighths of the scale, whose
    partial sums are multiples of scale / 8, still above the unit in the last place."""
    rng = np.random.default_rng(0)
    for _ in range(40):
        bias = float(rng.integers(-5000, 5000)) * scale * step
        levels = rng.integers(0, top + 1, inputs)
        signs = rng.choice([-1, 1], inputs)
        values = signs * (2 * levels - top) * scale
        assert bias_margin(scale, bias, top * inputs, inputs) == 0.0
        for _ in range(5):
            order = rng.permutation(inputs)
            got = _float32_sum(values, bias, order, int(rng.integers(0, inputs + 1)))
            assert got == bias + float(values.sum())
    # a bias with bits below the unit in the last place of the sums rounds: a margin again
    assert bias_margin(1.0, 3.1, 64, 64) == 2 * 2.0 ** (6 - 23)
    assert bias_margin(1.0, 2.0 ** -20, 64, 64) == 2 * 2.0 ** (6 - 23)


def test_granule_is_the_largest_power_of_two_dividing():
    assert np.array_equal(granule([12.0, 2.5, -0.375, 1.0, 0.1]),
                          [4.0, 0.5, 0.125, 1.0, 2.0 ** -55])   # 0.1 = odd / 2**55 in float64
    assert granule(0.0) == np.inf and granule(2.0 ** -30) == 2.0 ** -30
