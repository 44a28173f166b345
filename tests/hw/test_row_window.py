# amaranth: UnusedElaboratable=no
"""The row reader against the golden window view, a window row per transfer, with stalls."""

import numpy as np
import pytest

from bnnflow.hw.ring import ring_rows
from bnnflow.hw.row_window import RowWindow
from bnnflow.hw.testbench import fields_of, simulate_stream
from bnnflow.model import conventions

from .test_pixel_window import SHAPES
from .test_window import pixels_of

#: Beside the pixel reader's shapes: kernels wider than 3, widths that are no multiple of kw,
#: strides that step over whole banks (s >= kw) and by less than one.
ROW_SHAPES = SHAPES + [((6, 11, 2), (3, 4), 3), ((5, 13, 1), (2, 5), 7), ((8, 10, 3), (3, 3), 4),
                       ((4, 9, 2), (2, 4), 1)]


@pytest.mark.parametrize("shape, kernel, stride", ROW_SHAPES)
@pytest.mark.parametrize("stalls", [(1.0, 1.0), (0.6, 0.5), (1.0, 0.3), (0.3, 1.0)])
def test_windows_match_the_golden_window_view(shape, kernel, stride, stalls):
    # Three maps, so the ring wraps across maps; transfer a of a window is its row a.
    rng = np.random.default_rng(sum(shape) + stride)
    maps = rng.integers(0, 2, (3, int(np.prod(shape))), dtype=np.uint8)
    dut = RowWindow(shape, kernel, stride)
    row = kernel[1] * shape[2]
    want = conventions.windows(maps, shape, kernel, stride).reshape(-1, row)
    assert dut.windows * dut.chunks * 3 == len(want)
    run = simulate_stream(dut, pixels_of(maps, shape), expected_outputs=len(want),
                          seed=stride + shape[2], p_valid=stalls[0], p_ready=stalls[1])
    assert np.array_equal(fields_of(run.outputs, row), want)


def test_full_rate_timing_and_latency():
    """Without stalls a 3x2 window streams a row a cycle, its last row ``kh + 1`` edges after
    the pixel completing it."""
    shape, kernel = (5, 6, 2), (3, 2)
    dut = RowWindow(shape, kernel)
    maps = np.random.default_rng(0).integers(0, 2, (2, 60), dtype=np.uint8)
    run = simulate_stream(dut, pixels_of(maps, shape), expected_outputs=2 * dut.windows * 3)
    h, w = shape[:2]
    completing = [img * h * w + r * w + c for img in range(2) for r in range(2, h)
                  for c in range(1, w)]
    last = run.out_edges[dut.chunks - 1::dut.chunks]
    # A window takes 3 cycles here, a pixel completes one every cycle within a row: windows
    # queue up in the ring, none leaves before latency after its pixel.
    assert all(e >= run.in_edges[p] + dut.latency for p, e in zip(completing, last, strict=True))
    assert last[0] == run.in_edges[completing[0]] + dut.latency
    assert np.diff(run.out_edges[:3]).tolist() == [1, 1]
    assert dut.latency == 4 and dut.chunks == 3
    assert dut.line_bits == ring_rows(shape, kernel) * 2 * 3 * 2
