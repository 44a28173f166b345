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


@pytest.mark.parametrize("shape, window", [
    ((4, 4, 1), 2), ((5, 7, 3), 2), ((9, 9, 10), 3), ((7, 8, 2), 3), ((6, 6, 19), 2),
    ((3, 3, 1), 3), ((4, 5, 2), 1), ((2, 9, 4), 2), ((6, 6, 2), 4), ((9, 9, 3), 4),
    ((7, 11, 1), 5)])
@pytest.mark.parametrize("stalls", [(1.0, 1.0), (0.5, 0.6)])
def test_pool_matches_the_golden_or(shape, window, stalls):
    rng = np.random.default_rng(sum(shape) * window)
    # Sparse ones, so that an OR of zeros and a missed pixel both show.
    maps = (rng.random((3, int(np.prod(shape)))) < 0.15).astype(np.uint8)
    dut = MaxPool(shape, window)
    run = simulate_stream(dut, pixels_of(maps, shape), expected_outputs=3 * dut.outputs,
                          seed=window + shape[2], p_valid=stalls[0], p_ready=stalls[1])
    want = conventions.maxpool_or(maps, shape, window).reshape(-1, shape[2])
    assert np.array_equal(fields_of(run.outputs, shape[2]), want)


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


def test_overlapping_pool_is_refused_with_the_fix(tmp_path, capsys):
    # The golden model computes stride != window (an imported graph may have one); the
    # hardware does not, and says so in one line before anything is written.
    from bnnflow.cli import main
    from bnnflow.model.artifact import save
    from bnnflow.model.random_net import random_conv_model

    model = random_conv_model((8, 8, 1), [("conv", 2, 3), ("pool", 2, 1), ("dense", 4)], 3)
    with pytest.raises(ValueError, match=r"pool1: the max-pool unit needs stride == window, "
                                         r"not stride 1 with window 2 \(overlapping pools"):
        MaxPool.from_layer(model.layers[1], None, None)
    save(model, tmp_path / "m.bnn")
    assert main(["verilog", str(tmp_path / "m.bnn"), "-o", str(tmp_path / "m.v")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "its stride equal to its window" in err
    assert not (tmp_path / "m.v").exists()
