# amaranth: UnusedElaboratable=no
"""The sliding-window unit against the golden window view, with stalls on both sides."""

import numpy as np
import pytest

from bnnflow.hw.testbench import fields_of, simulate_stream
from bnnflow.hw.window import SlidingWindow
from bnnflow.model import conventions


def pixels_of(maps, shape):
    """Payloads of a pixel stream: each map's pixels in row-major order, channel ch at bit ch."""
    c = shape[2]
    return [conventions.pack_int(m[p * c:(p + 1) * c]) for m in maps
            for p in range(shape[0] * shape[1])]


@pytest.mark.parametrize("shape, kernel", [
    ((5, 5, 1), (3, 3)), ((4, 7, 3), (2, 3)), ((6, 5, 2), (1, 1)), ((3, 3, 5), (3, 3)),
    ((7, 4, 19), (5, 2)), ((5, 6, 1), (1, 4)), ((1, 6, 2), (1, 2)), ((6, 1, 3), (4, 1)),
    ((9, 8, 4), (4, 5))])
@pytest.mark.parametrize("stalls", [(1.0, 1.0), (0.6, 0.5)])
def test_windows_match_the_golden_window_view(shape, kernel, stalls):
    rng = np.random.default_rng(sum(shape) + kernel[0])
    maps = rng.integers(0, 2, (3, int(np.prod(shape))), dtype=np.uint8)
    dut = SlidingWindow(shape, kernel)
    k = kernel[0] * kernel[1] * shape[2]
    run = simulate_stream(dut, pixels_of(maps, shape), expected_outputs=3 * dut.windows,
                          seed=len(shape) + k, p_valid=stalls[0], p_ready=stalls[1])
    want = conventions.windows(maps, shape, kernel).reshape(-1, k)
    assert np.array_equal(fields_of(run.outputs, k), want)


@pytest.mark.parametrize("shape, kernel, stride", [
    ((7, 7, 1), (3, 3), 2), ((8, 9, 3), (2, 3), 3), ((6, 5, 2), (1, 1), 2),
    ((9, 8, 4), (4, 5), 2), ((5, 7, 1), (2, 2), 5), ((7, 5, 3), (1, 2), 4),
    ((4, 4, 2), (3, 3), 2)])
@pytest.mark.parametrize("stalls", [(1.0, 1.0), (0.6, 0.5)])
def test_strided_windows_match_the_golden_window_view(shape, kernel, stride, stalls):
    # Odd sizes, strides above, equal to and below the kernel, and maps whose last rows and
    # columns complete no window (they are taken and dropped).
    rng = np.random.default_rng(sum(shape) + stride)
    maps = rng.integers(0, 2, (3, int(np.prod(shape))), dtype=np.uint8)
    dut = SlidingWindow(shape, kernel, stride)
    k = kernel[0] * kernel[1] * shape[2]
    want = conventions.windows(maps, shape, kernel, stride).reshape(-1, k)
    assert dut.windows * 3 == len(want)
    run = simulate_stream(dut, pixels_of(maps, shape), expected_outputs=3 * dut.windows,
                          seed=stride + k, p_valid=stalls[0], p_ready=stalls[1])
    assert np.array_equal(fields_of(run.outputs, k), want)


def test_strided_windows_leave_after_the_pixel_completing_them():
    shape, kernel, stride = (7, 8, 1), (3, 2), 3
    dut = SlidingWindow(shape, kernel, stride)
    maps = np.random.default_rng(1).integers(0, 2, (2, 56), dtype=np.uint8)
    run = simulate_stream(dut, pixels_of(maps, shape), expected_outputs=2 * dut.windows)
    h, w = shape[:2]
    completing = [img * h * w + r * w + c for img in range(2) for r in (2, 5)
                  for c in (1, 4, 7)]
    assert dut.windows == 6
    assert [run.in_edges[p] + dut.latency for p in completing] == run.out_edges


def test_full_rate_timing_and_latency():
    """With no stalls a pixel is taken every cycle and a window leaves one edge after the
    pixel that completes it."""
    shape, kernel = (5, 6, 2), (3, 2)
    dut = SlidingWindow(shape, kernel)
    maps = np.random.default_rng(0).integers(0, 2, (2, 60), dtype=np.uint8)
    run = simulate_stream(dut, pixels_of(maps, shape), expected_outputs=2 * dut.windows)
    assert np.diff(run.in_edges).tolist() == [1] * (len(run.in_edges) - 1)
    h, w = shape[:2]
    completing = [img * h * w + r * w + c for img in range(2) for r in range(2, h)
                  for c in range(1, w)]
    assert [run.in_edges[p] + dut.latency for p in completing] == run.out_edges
    assert dut.line_bits == 6 * 2 * 2


def test_bad_shapes_are_value_errors():
    with pytest.raises(ValueError, match=r"kernel 4x2 does not fit a 3x5 map"):
        SlidingWindow((3, 5, 1), (4, 2))
    with pytest.raises(ValueError, match=r"in_shape must be \(H, W, C\) and kernel \(kh, kw\)"):
        SlidingWindow((3, 5), (1, 1))
    with pytest.raises(ValueError, match=r"stride must be a positive integer, not 0"):
        SlidingWindow((3, 5, 1), (1, 1), 0)


@pytest.mark.parametrize(("shape", "kernel", "stride"), [
    ((6, 6, 4), (3, 3), 1), ((5, 7, 3), (2, 3), 1), ((6, 5, 2), (1, 1), 1),
    ((9, 9, 3), (3, 3), 2), ((8, 7, 2), (2, 2), 3)])
def test_the_window_registers_are_the_only_window_sized_flip_flops(shape, kernel, stride,
                                                                    yosys_flops):
    # The window registers are the output: K flip-flops, plus the valid bit and the row and
    # column counters (an output register beside them cost another K per conv layer); a
    # stride adds a phase counter per axis.
    flops = yosys_flops(SlidingWindow(shape, kernel, stride))
    h, w, c = shape
    counters = (h - 1).bit_length() + (w - 1).bit_length()
    phases = 2 * (stride - 1).bit_length()
    assert flops == kernel[0] * kernel[1] * c + 1 + counters + phases


def test_no_pixel_is_taken_while_a_window_waits():
    from amaranth.sim import Simulator

    dut = SlidingWindow((3, 4, 2), (2, 2))
    rng = np.random.default_rng(5)
    waits = []

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        held = None
        for cycle in range(60):
            ctx.set(dut.i.payload, cycle % 4)
            ctx.set(dut.o.ready, int(rng.random() < 0.3))
            valid, ready = ctx.get(dut.o.valid), ctx.get(dut.o.ready)
            assert ctx.get(dut.i.ready) == (not valid or ready), cycle
            if held is not None:
                assert ctx.get(dut.o.payload) == held     # a waiting window stays as it was
            held = ctx.get(dut.o.payload) if valid and not ready else None
            waits.append(valid and not ready)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert sum(waits) >= 10
