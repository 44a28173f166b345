# amaranth: UnusedElaboratable=no
"""The window reader against the golden window view, a pixel per transfer, with stalls."""

import numpy as np
import pytest

from bnnflow.hw.pixel_window import PixelWindow
from bnnflow.hw.ring import ring_rows
from bnnflow.hw.testbench import fields_of, simulate_stream
from bnnflow.model import conventions

from .test_window import pixels_of

SHAPES = [((5, 5, 1), (3, 3), 1), ((4, 7, 3), (2, 3), 1), ((6, 5, 2), (1, 1), 1),
          ((3, 3, 5), (3, 3), 1), ((7, 4, 19), (5, 2), 1), ((1, 6, 2), (1, 2), 1),
          ((6, 1, 3), (4, 1), 1), ((9, 8, 4), (4, 5), 1), ((7, 7, 1), (3, 3), 2),
          ((8, 9, 3), (2, 3), 3), ((6, 5, 2), (1, 1), 2), ((9, 8, 4), (4, 5), 2),
          ((5, 7, 1), (2, 2), 5), ((7, 5, 3), (1, 2), 4), ((4, 4, 2), (3, 3), 2)]


@pytest.mark.parametrize("shape, kernel, stride", SHAPES)
@pytest.mark.parametrize("stalls", [(1.0, 1.0), (0.6, 0.5), (1.0, 0.3), (0.3, 1.0)])
def test_windows_match_the_golden_window_view(shape, kernel, stride, stalls):
    # Odd sizes, strides above, equal to and below the kernel, maps whose last rows and
    # columns complete no window; three maps, so the ring wraps across maps.
    rng = np.random.default_rng(sum(shape) + stride)
    maps = rng.integers(0, 2, (3, int(np.prod(shape))), dtype=np.uint8)
    dut = PixelWindow(shape, kernel, stride)
    c = shape[2]
    want = conventions.windows(maps, shape, kernel, stride).reshape(-1, c)
    assert dut.windows * dut.chunks * 3 == len(want)
    run = simulate_stream(dut, pixels_of(maps, shape), expected_outputs=len(want),
                          seed=stride + c, p_valid=stalls[0], p_ready=stalls[1])
    assert np.array_equal(fields_of(run.outputs, c), want)


def test_full_rate_timing_and_latency():
    """Without stalls a 3x2 window streams a pixel a cycle, its last pixel ``kh * kw + 1``
    edges after the pixel completing it, and the writer is never held up by the reader when
    windows are read faster than pixels arrive."""
    shape, kernel = (5, 6, 2), (3, 2)
    dut = PixelWindow(shape, kernel)
    maps = np.random.default_rng(0).integers(0, 2, (2, 60), dtype=np.uint8)
    run = simulate_stream(dut, pixels_of(maps, shape), expected_outputs=2 * dut.windows * 6)
    h, w = shape[:2]
    completing = [img * h * w + r * w + c for img in range(2) for r in range(2, h)
                  for c in range(1, w)]
    last = run.out_edges[dut.chunks - 1::dut.chunks]
    # The reader takes 6 cycles a window and a pixel completes one every cycle within a row,
    # so windows queue up: each leaves no earlier than latency after its pixel.
    assert all(e >= run.in_edges[p] + dut.latency for p, e in zip(completing, last, strict=True))
    assert last[0] == run.in_edges[completing[0]] + dut.latency
    assert np.diff(run.out_edges[:6]).tolist() == [1] * 5
    assert dut.latency == 7 and dut.line_bits == ring_rows(shape, kernel) * 6 * 2
