# amaranth: UnusedElaboratable=no
"""Conv networks on the boards side: estimates count the map units, the UART top refuses a
pixel-stream input with one line."""

import pytest

from bnnflow.boards.estimate import estimate_brams, estimate_ffs, estimate_luts
from bnnflow.boards.estimate_maps import map_unit_ffs, map_unit_memories
from bnnflow.boards.uart_top import UartTop
from bnnflow.hw.conv import window_queue_depth
from bnnflow.hw.folding import resolve_folding
from bnnflow.hw.top import BnnTop
from bnnflow.model.random_net import random_conv_model


@pytest.fixture
def conv_model():
    return random_conv_model((12, 11, 3), [("conv", 8, 3), ("pool", 2), ("conv", 6, 2),
                                           ("dense", 16)], 10, seed=0)


def test_estimates_count_window_units_queues_and_pools(conv_model):
    folding = resolve_folding(conv_model, "auto", 300)
    top = BnnTop(conv_model, folding)
    side = {entry["name"]: entry for entry in top.sidecar()["layers"]}
    conv = conv_model.layers[0]
    assert side["conv0"]["queue_depth"] == window_queue_depth(conv, folding[0])
    # Line memory W x (kh-1)*Cin and the queue's depth-1 words of K bits.
    assert map_unit_memories(conv, side["conv0"]) == [(2 * 3, 11),
                                                      (27, side["conv0"]["queue_depth"] - 1)]
    pool = conv_model.layers[1]
    assert map_unit_memories(pool, side["pool1"]) == [(8, 4)]
    assert map_unit_ffs(pool, side["pool1"]) == 2 * 8 + 1 + 2 * (4 + 4)
    for family in ("ice40", "ecp5"):
        assert estimate_ffs(conv_model, folding, 0, family) > map_unit_ffs(conv, side["conv0"])
        assert estimate_luts(conv_model, folding, family) > 0
        assert estimate_brams(conv_model, folding, family) >= 0


def test_uart_top_refuses_a_pixel_stream_input(conv_model):
    folding = resolve_folding(conv_model, "auto", 300)
    with pytest.raises(ValueError, match=r"the UART top sends whole input vectors: board "
                                         r"builds of conv networks"):
        UartTop(conv_model, folding, divisor=104)
