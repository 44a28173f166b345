# amaranth: UnusedElaboratable=no
"""Conv networks on the boards side: estimates count the map units; the UART top streams the
request's bits into the network as pixels, and drops a stalled request with the network's
state."""

import numpy as np
import pytest

from bnnflow.boards.estimate import estimate_brams, estimate_ffs, estimate_luts
from bnnflow.boards.estimate_maps import map_unit_ffs, map_unit_memories
from bnnflow.boards.host import (
    SimTransport,
    TransportTimeout,
    classify_over,
    decode_reply,
    encode_request,
)
from bnnflow.boards.uart_top import UartTop
from bnnflow.hw.conv import window_queue_depth
from bnnflow.hw.folding import resolve_folding
from bnnflow.hw.top import BnnTop
from bnnflow.model import golden
from bnnflow.model.random_net import random_conv_model


@pytest.fixture
def conv_model():
    return random_conv_model((12, 11, 3), [("conv", 8, 3), ("pool", 2), ("conv", 6, 2),
                                           ("dense", 16)], 10, seed=0)


def test_estimates_count_window_units_queues_and_pools(conv_model):
    # conv0 reads whole windows a cycle (SF 1): window registers and a queue.
    folding = resolve_folding(conv_model, "8x27,1x1,1x8,1x6,1x1")
    top = BnnTop(conv_model, folding)
    side = {entry["name"]: entry for entry in top.sidecar()["layers"]}
    assert side["conv0"]["window"] == "registers"
    conv = conv_model.layers[0]
    assert side["conv0"]["queue_depth"] == window_queue_depth(conv, folding[0])
    # Line memory W x (kh-1)*Cin and the queue's depth-1 words of K bits.
    # The line memory reads what it writes in the same cycle (transparent), the queue not.
    assert map_unit_memories(conv, side["conv0"]) == [
        (2 * 3, 11, True), (27, side["conv0"]["queue_depth"] - 1, False)]
    pool = conv_model.layers[1]
    assert map_unit_memories(pool, side["pool1"]) == [(8, 4, True)]
    # Row and output registers, valid, row and column counters, per axis an open flag and a
    # 1-bit phase, the next row window's index (0..5).
    assert map_unit_ffs(pool, side["pool1"]) == 2 * 8 + 1 + (4 + 4) + 2 * 2 + 3
    for family in ("ice40", "ecp5"):
        assert estimate_ffs(conv_model, folding, 0, family) > map_unit_ffs(conv, side["conv0"])
        assert estimate_luts(conv_model, folding, family) > 0
        assert estimate_brams(conv_model, folding, family) >= 0


def test_estimates_size_the_queues_of_padded_convs_as_the_hardware_does():
    # The second conv (pad 1) takes conv0's pixels every 4 cycles: a pad queue in front of
    # its pad unit; the first (pad 2) takes the input at a pixel a cycle: none.
    model = random_conv_model((8, 7, 2), [("conv", 4, 3, 3, 1, 2), ("conv", 3, 3, 3, 2, 1),
                                          ("dense", 5)], 3, seed=0)
    folding = resolve_folding(model, "2x9,1x12,5x12,3x5")
    side = {entry["name"]: entry for entry in BnnTop(model, folding).sidecar()["layers"]}
    from bnnflow.boards.estimate import _map_units

    units = dict((layer.name, unit) for layer, unit in _map_units(model, folding))
    for name in ("conv0", "conv1"):
        assert units[name] == {key: side[name].get(key, 0) for key in units[name]}
    assert units["conv0"]["pad_queue_depth"] == 0 < units["conv1"]["pad_queue_depth"]
    assert side["conv1"]["pad"] == 1 and side["conv1"]["pad_value"] == 0


def test_estimates_count_ternary_roms_and_8_bit_windows():
    kw = {"seed": 0}
    stages = [("conv", 8, 3), ("pool", 2), ("dense", 16)]
    binary = random_conv_model((12, 11, 3), stages, 10, **kw)
    wide = random_conv_model((12, 11, 3), stages, 10, ternary=True, input_bits=8, **kw)
    folding = resolve_folding(binary, "2x9,1x1,4x8,5x16")
    side = {entry["name"]: entry for entry in BnnTop(wide, folding).sidecar()["layers"]}
    conv = wide.layers[0]
    # 8-bit elements: the ring of a pixel window (6 rows of 11 pixels; the folding reads a
    # window in 12 cycles, its 9 pixels fit) holds 8-bit words, as would the line memory and
    # the queue of a window in registers.
    assert side["conv0"]["window"] == "pixels"
    assert map_unit_memories(conv, side["conv0"]) == [(3 * 8, 6 * 11, False, True)]
    regs = {**side["conv0"], "window": "registers", "queue_depth": 3}
    assert map_unit_memories(conv, regs) == [(2 * 3 * 8, 11, True), (27 * 8, 2, False)]
    assert side["conv0"]["rom_bits"] == 2 * 8 * 27          # sign and mask per weight
    for family in ("ice40", "ecp5"):
        assert estimate_ffs(wide, folding, 0, family) > estimate_ffs(binary, folding, 0, family)
        assert estimate_luts(wide, folding, family) > estimate_luts(binary, folding, family)


@pytest.mark.parametrize(("shape", "window", "stride", "bits"), [
    ((24, 24, 16), 2, 2, 1), ((11, 11, 32), 3, 3, 1), ((11, 11, 32), 3, 2, 1),
    ((11, 11, 32), 3, 1, 1), ((12, 12, 16), 3, 2, 2), ((9, 8, 3), 5, 2, 1)])
def test_pool_flip_flop_estimate_is_the_units_count(yosys_flops, shape, window, stride, bits):
    # Overlapping windows (stride < window) keep one row register, phase and line memory
    # per open window; the estimate counts them as Yosys does before mapping.
    from bnnflow.hw.maxpool import MaxPool
    from bnnflow.model.pool import MaxPool2dLayer

    dut = MaxPool(shape, window, bits, stride)
    flops = yosys_flops(dut)
    layer = MaxPool2dLayer("p", shape, window, stride, bits)
    assert map_unit_ffs(layer, dut.sidecar()) == flops
    assert map_unit_memories(layer, dut.sidecar()) == [(shape[2] * bits, dut.out_shape[1],
                                                        True)] * dut.slots


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_conv_window_flip_flop_estimate_is_the_units_count(yosys_flops, stride):
    # The window part of a conv layer's estimate (the rest is its queue) against Yosys' count
    # of the sliding-window unit; a stride adds a phase counter per axis.
    from bnnflow.hw.window import SlidingWindow

    conv = random_conv_model((9, 9, 2), [("conv", 3, 3, 3, stride), ("dense", 4)], 2).layers[0]
    depth = 5
    queue = 1 + 2 * depth.bit_length() + 1      # its output register is its memory's
    flops = yosys_flops(SlidingWindow(conv.in_shape, conv.kernel, stride))
    assert map_unit_ffs(conv, {"queue_depth": depth}) - queue == flops


@pytest.mark.parametrize(("shape", "stage"), [
    ((9, 9, 2), ("conv", 3, 3, 3, 1)), ((9, 9, 2), ("conv", 3, 3, 3, 2)),
    ((12, 11, 5), ("conv", 3, 2, 3, 3)), ((7, 6, 3), ("conv", 3, 1, 1, 1))])
def test_pixel_window_flip_flop_estimate_is_the_units_count(yosys_flops, shape, stage):
    # Addresses, counters, lag and valid bit of the window reader; its ring is a memory.
    from bnnflow.hw.pixel_window import PixelWindow

    conv = random_conv_model(shape, [stage, ("dense", 4)], 2).layers[0]
    dut = PixelWindow(conv.padded_shape, conv.kernel, conv.stride)
    side = {"window": "pixels", "ring_rows": dut.rows, "queue_depth": 0}
    assert map_unit_ffs(conv, side) == yosys_flops(dut)
    assert map_unit_memories(conv, side) == [(shape[2], dut.rows * conv.padded_shape[1],
                                              False, True)]


@pytest.mark.parametrize(("shape", "stage"), [
    ((9, 9, 2), ("conv", 3, 3, 3, 1)), ((9, 9, 2), ("conv", 3, 3, 3, 2)),
    ((12, 11, 5), ("conv", 3, 2, 3, 3)), ((7, 6, 3), ("conv", 3, 1, 1, 1)),
    ((8, 12, 2), ("conv", 3, 3, 5, 1)), ((11, 10, 1), ("conv", 3, 2, 2, 3))])
def test_row_window_flip_flop_estimate_is_the_units_count(yosys_flops, shape, stage):
    # Addresses, counters (the writer's and reader's bank and word), lag and valid bit of the
    # row reader; its kw banks are memories of ceil(W / kw) words a row.
    from bnnflow.hw.row_window import RowWindow

    conv = random_conv_model(shape, [stage, ("dense", 4)], 2).layers[0]
    dut = RowWindow(conv.padded_shape, conv.kernel, conv.stride)
    side = {"window": "rows", "ring_rows": dut.rows, "queue_depth": 0}
    assert map_unit_ffs(conv, side) == yosys_flops(dut)
    kw, w = conv.kernel[1], conv.padded_shape[1]
    assert map_unit_memories(conv, side) == [(shape[2], dut.rows * -(-w // kw), False,
                                              True)] * kw


@pytest.mark.slow
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
@pytest.mark.parametrize(("shape", "stage"), [((8, 12, 2), ("conv", 3, 3, 5, 1)),
                                              ((14, 14, 32), ("conv", 3, 3, 3, 1))])
def test_row_window_logic_estimate_follows_yosys(tmp_path, family, shape, stage):
    # The unit alone through synth_<family>: its logic measure (banks included) against
    # map_unit_luts; the rotation term was fitted on nine such units (-25..+26 %).
    from amaranth.back import rtlil

    from bnnflow.boards.estimate_maps import map_unit_luts
    from bnnflow.boards.synth import SYNTH_TOP, _run_yosys
    from bnnflow.boards.tools import find_tool
    from bnnflow.hw.row_window import RowWindow

    conv = random_conv_model(shape, [stage, ("dense", 4)], 2).layers[0]
    dut = RowWindow(conv.padded_shape, conv.kernel, conv.stride)
    (tmp_path / "design.il").write_text(rtlil.convert(dut, name=SYNTH_TOP, emit_src=False))
    _, counts = _run_yosys(find_tool("yosys"), family, tmp_path, tmp_path)
    side = {"window": "rows", "ring_rows": dut.rows, "queue_depth": 0}
    assert map_unit_luts(conv, side, family) == pytest.approx(counts.logic, rel=0.3)


def test_estimates_follow_the_window_kind_the_hardware_chooses():
    # 8 input channels: conv0 (72-bit windows, 8x24: 3 cycles a window) reads a window row a
    # cycle, conv2 (2x16: 6 cycles) a pixel a cycle: no queues, and the estimate's units are
    # the sidecar's.
    from bnnflow.boards.estimate import _map_units

    model = random_conv_model((12, 11, 8), [("conv", 8, 3), ("pool", 2), ("conv", 6, 2),
                                            ("dense", 16)], 10, seed=0)
    folding = resolve_folding(model, "8x24,1x1,2x16,1x6,1x1")
    side = {entry["name"]: entry for entry in BnnTop(model, folding).sidecar()["layers"]}
    assert [side[n]["window"] for n in ("conv0", "conv2")] == ["rows", "pixels"]
    units = {layer.name: unit for layer, unit in _map_units(model, folding)}
    for name in ("conv0", "conv2"):
        assert side[name]["queue_depth"] == units[name]["queue_depth"] == 0
        assert units[name]["window"] == side[name]["window"]
        assert units[name]["ring_rows"] == side[name]["ring_rows"]
    assert map_unit_memories(model.layers[0], units["conv0"]) == [
        (8, side["conv0"]["ring_rows"] * 4, False, True)] * 3


@pytest.mark.parametrize(("shape", "stage", "in_bits"), [
    ((9, 9, 2), ("conv", 3, 3, 3, 1, 1), 1), ((7, 6, 3), ("conv", 3, 3, 3, 2, 2, 200), 8)])
def test_padded_conv_flip_flop_estimate_is_the_units_count(yosys_flops, shape, stage, in_bits):
    # A padded conv's window unit works on the padded map; its pad unit adds a pixel
    # register, a valid bit, counters over the padded map and two flags. The two queues are
    # counted by the same formula and left out here, as above.
    from bnnflow.hw.pad import PadMap, border_pixel
    from bnnflow.hw.window import SlidingWindow

    conv = random_conv_model(shape, [stage, ("dense", 4)], 2, input_bits=in_bits).layers[0]
    pixel = shape[2] * in_bits
    depth, pad_depth = 5, 4
    queues = 1 + 2 * depth.bit_length() + 1 + 1 + 2 * pad_depth.bit_length() + 1
    flops = (yosys_flops(SlidingWindow((*conv.padded_shape[:2], pixel), conv.kernel,
                                       conv.stride))
             + yosys_flops(PadMap(shape[:2], conv.pad, pixel,
                                  border_pixel(conv.pad_value, shape[2], in_bits))))
    side = {"queue_depth": depth, "pad_queue_depth": pad_depth}
    assert map_unit_ffs(conv, side) - queues == flops
    # Line memory over the padded width, window queue, pad queue.
    wp = conv.padded_shape[1]
    assert map_unit_memories(conv, side) == [(2 * pixel, wp, True), (9 * pixel, depth - 1, False),
                                             (pixel, pad_depth - 1, False)]


@pytest.mark.parametrize(("shape", "stages", "fold"), [
    # 3-bit pixels: bytes and pixels do not align; 18*3 = 54 bits in 7 bytes.
    ((6, 3, 3), [("conv", 4, 3), ("dense", 5)], None),
    # 1-bit pixels, a pool and a folded conv slower than the UART at divisor 3.
    ((7, 6, 1), [("conv", 5, 3), ("pool", 2), ("dense", 6)], "2x3,1x1,3x10,3x6"),
])
@pytest.mark.parametrize("window", [1, 2])
def test_uart_top_streams_pixels_into_a_conv_network(shape, stages, fold, window):
    model = random_conv_model(shape, stages, 3, seed=4)
    bits = np.random.default_rng(1).integers(0, 2, size=(5, model.input.width), dtype=np.uint8)
    top = UartTop(model, fold, 1, divisor=3)
    assert top.pixels and "pixels as they arrive" in top.protocol()["request"]
    with SimTransport(top) as transport:
        result = classify_over(transport, model, bits, window=window)
    expected = golden.run(model, bits)
    assert np.array_equal(result.classes, expected.classes)
    assert np.array_equal(result.popcounts, expected.popcounts)
    assert result.mismatches == 0


@pytest.mark.parametrize("ternary", [False, True])
def test_uart_top_streams_8_bit_pixels_into_a_conv_network(ternary):
    # 8-bit pixels of 2 channels: 16-bit transfers, two request bytes per pixel.
    model = random_conv_model((5, 4, 2), [("conv", 3, 3), ("dense", 4)], 3, seed=6,
                              ternary=ternary, input_bits=8)
    x = np.random.default_rng(3).integers(0, 256, size=(4, model.input.width), dtype=np.uint8)
    top = UartTop(model, "3x6,2x6,3x4", 1, divisor=3)
    assert top.pixels and top.bnn.in_chunk == 16 and top.request_bytes == 40
    with SimTransport(top) as transport:
        result = classify_over(transport, model, x, window=2)
    expected = golden.run(model, x)
    assert np.array_equal(result.classes, expected.classes)
    assert np.array_equal(result.popcounts, expected.popcounts)


def test_a_stalled_conv_request_is_dropped_with_the_network_state():
    model = random_conv_model((6, 3, 3), [("conv", 4, 3), ("dense", 5)], 3, seed=4)
    bits = np.random.default_rng(2).integers(0, 2, size=(2, model.input.width), dtype=np.uint8)
    top = UartTop(model, divisor=4, frame_timeout=30)
    with SimTransport(top) as transport:
        transport.write(encode_request(bits[0])[:4])      # 4 of 7 bytes: 10 pixels sent on
        transport.idle(4 * 30 + 200)
        transport.write(encode_request(bits[1]))
        cls, counts = decode_reply(transport.read(top.reply_bytes), 3, 1)
        with pytest.raises(TransportTimeout):
            transport.read(1)
    expected = golden.run(model, bits[1:])
    assert cls == expected.classes[0]
    assert np.array_equal(counts, expected.popcounts[0])
