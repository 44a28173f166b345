# amaranth: UnusedElaboratable=no
"""The cycle model of the handshakes (bnnflow.hw.timing): it gives the closed-form latency of
MLPs for every folding, buffer kind and pipeline depth, and which pixels an output needs.
Its conv latencies are checked against simulation in tests/hw/test_top_conv.py and
tests/sim/test_verify_conv.py."""

import numpy as np
import pytest

from bnnflow.hw import timing
from bnnflow.hw.folding import auto_fold
from bnnflow.hw.timing import needed_pixels, stream_latency
from bnnflow.hw.top import BnnTop
from bnnflow.model.random_net import random_conv_model, random_model


@pytest.mark.parametrize("seed", range(12))
def test_cycle_model_gives_the_closed_form_latency_of_mlps(seed):
    rng = np.random.default_rng(seed)
    widths = [int(rng.integers(3, 60)) for _ in range(int(rng.integers(2, 5)))]
    model = random_model([*widths, int(rng.integers(2, 7))], seed=seed)
    folding, _ = auto_fold(model, int(rng.integers(model.layers[0].fan_in // 8 + 1, 90)))
    for pipeline in (0, 1, 2):
        top = BnnTop(model, folding, pipeline)
        assert top.latency == (sum(u.latency for u in top.layers)
                                + sum(u.accept_wait for u in top.layers[1:])
                                + 1 + top.argmax_stages)
        assert stream_latency(top) == top.latency
        assert timing.stream_timing(top) == (top.latency, top.unit_ii)


@pytest.mark.parametrize(("shape", "stages", "needed"), [
    # Nothing dropped: the output needs every pixel.
    ((6, 6, 2), [("conv", 3, 3), ("pool", 2), ("dense", 4)], 36),
    # A 5x4 map pooled by 2 drops its last row: input rows 0..5 of 7 (pixels up to (5, 5)).
    ((7, 6, 2), [("conv", 5, 3), ("pool", 2), ("dense", 6)], 36),
    # Pool 3 over 6x5 keeps all rows and columns 0..2 of conv1: conv1 needs columns 0..3 of
    # conv0, conv0 columns 0..5 of the 9x8 input, all rows: the last needed pixel is (8, 5).
    ((9, 8, 3), [("conv", 4, 3), ("conv", 3, 2), ("pool", 3), ("dense", 5)], 8 * 8 + 6),
    ((5, 5, 1), [("pool", 2), ("dense", 3)], 19),
    # A 2x2 conv every 3 pixels over 11x10 gives 4x3, a 2x2 conv 3x2, the pool 1x1: the pool
    # reads rows and columns 0..1 of conv1, conv1 0..2 of conv0, conv0 0..7 of the input.
    ((11, 10, 1), [("conv", 3, 2, 2, 3), ("conv", 4, 2, 2, 1), ("pool", 2), ("dense", 4)],
     7 * 10 + 8),
    # Padded by 1, a 3x3 conv every 3 pixels over 9x8 (11x10 padded, 3x3 out) reads padded
    # rows and columns 0..8: input rows 0..7 and columns 0..7 (the last one).
    ((9, 8, 1), [("conv", 3, 3, 3, 3, 1), ("dense", 4)], 7 * 8 + 8),
    # 2x2 every 3 over 3x5 padded by 1 (5x7): the last windows read the bottom border, which
    # the pad unit sends after the map's last pixel, so all 15 pixels (not 2 rows and 4).
    ((3, 5, 1), [("conv", 3, 2, 2, 3, 1), ("dense", 4)], 15),
    # A pool dropping the 9x9 map's last row and column into a padded conv that needs all of
    # the pool's 4x4 (its last windows read the border): input rows and columns 0..7.
    ((9, 9, 1), [("pool", 2), ("conv", 3, 3, 3, 1, 1), ("dense", 4)], 7 * 9 + 8),
])
def test_needed_pixels_stop_at_the_last_pixel_the_output_depends_on(shape, stages, needed):
    model = random_conv_model(shape, stages, 3, seed=0)
    assert needed_pixels(model) == needed
    # The units' control (the cycle model) gives the output after exactly that many pixels.
    top = BnnTop(model)
    assert _output_after(top, needed) and not _output_after(top, needed - 1)


def _output_after(top, pixels, cycles=3000):
    """Whether the cycle model of ``top`` gives an output when only ``pixels`` pixels of an
    image are sent."""
    stages = timing._stages(top)
    sent = 0
    for _ in range(cycles):
        readys = [True] * (len(stages) + 1)
        for s in range(len(stages) - 1, -1, -1):
            readys[s] = stages[s].i_ready(readys[s + 1])
        if stages[-1].o_valid:
            return True
        valids = [sent < pixels] + [stage.o_valid for stage in stages]
        for s, stage in enumerate(stages):
            sent += int(stage.tick(valids[s], readys[s + 1]) and s == 0)
    return False


def test_an_mlp_needs_its_one_transfer():
    assert needed_pixels(random_model([9, 4, 3], seed=0)) == 1


@pytest.mark.parametrize(("edges", "ii"), [([], None), ([7], None), ([0, 10, 20, 30], 10),
                                           ([0, 12, 21, 31, 40, 52], 31 / 3), ([3, 5], 2)])
def test_mean_spacing_is_over_the_second_half_as_verify_measures_it(edges, ii):
    assert timing.mean_spacing(edges) == ii
    assert isinstance(timing.mean_spacing(edges), type(ii))
