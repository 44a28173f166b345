# amaranth: UnusedElaboratable=no
"""Threshold unit against conventions.fire: one and several thresholds, folded lanes."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from bnnflow.hw.threshold import Threshold
from bnnflow.model import conventions


def random_thresholds(rng, n, t, k):
    th = np.sort(rng.integers(0, k + 2, size=(n, t)), axis=1)
    th[0, :] = 0                 # always reaches every threshold
    th[-1, :] = k + 1            # never reaches any
    return th


@pytest.mark.parametrize("t", [1, 3, 7, 255])
@pytest.mark.parametrize("pe", [13, 5, 1])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("select_ahead", [False, True])
def test_activations_equal_number_of_thresholds_reached(t, pe, seed, select_ahead):
    rng = np.random.default_rng(seed)
    n, k = 13, 37
    width = k.bit_length()
    th = random_thresholds(rng, n, t, k)
    popcounts = rng.integers(0, k + 1, size=(20, n))
    popcounts[0] = th[:, 0]                      # exactly at a threshold fires
    popcounts[1] = np.maximum(th[:, 0] - 1, 0)   # one below does not
    expected = conventions.fire(popcounts, th)
    dut = Threshold(th, pe, width, select_ahead=select_ahead)
    folds = -(-n // pe)
    clocked = select_ahead and folds > 1          # one group: constants, nothing registered
    got = np.zeros_like(expected)

    async def bench(ctx):
        ctx.set(dut.en, 1)
        for b in range(len(popcounts)):
            for f in range(folds):
                ctx.set(dut.fold, f)
                if clocked:
                    # The fold leads by one enabled cycle; a disabled cycle in between (fold
                    # changed meanwhile) must not disturb the registered thresholds.
                    await ctx.tick()
                    ctx.set(dut.en, 0)
                    ctx.set(dut.fold, (f + 1) % folds)
                    await ctx.tick()
                    ctx.set(dut.en, 1)
                for p in range(pe):
                    neuron = f * pe + p
                    ctx.set(dut.popcounts[p], int(popcounts[b, neuron]) if neuron < n else 0)
                for p in range(pe):
                    neuron = f * pe + p
                    if neuron < n:
                        got[b, neuron] = ctx.get(dut.activations[p])

    sim = Simulator(dut)
    if clocked:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert np.array_equal(got, expected)
    assert dut.act_width == t.bit_length()


@pytest.mark.parametrize(("args", "message"), [
    ((np.zeros((0, 1), dtype=int), 1, 4), r"thresholds must be a non-empty \(N, T\) integer"),
    ((np.array([[2, 1]]), 1, 4), "thresholds must be non-negative and sorted ascending"),
    ((np.array([[-1]]), 1, 4), "thresholds must be non-negative and sorted ascending"),
    ((np.zeros((3, 1), dtype=int), 4, 4), r"^pe must be an integer in 1\.\.3, not 4$"),
    ((np.zeros((3, 1), dtype=int), 0, 4), r"^pe must be an integer in 1\.\.3, not 0$"),
    ((np.zeros((3, 1), dtype=int), 1, 0), "^width must be a positive integer, not 0$"),
])
def test_bad_parameters_raise_value_error(args, message):
    with pytest.raises(ValueError, match=message):
        Threshold(*args)
