# amaranth: UnusedElaboratable=no
"""What the two window readers share (:mod:`bnnflow.hw.ring`): ring size and shape checks.
Their walks are tested through the readers, against the golden window view."""

import pytest

from bnnflow.hw.pixel_window import PixelWindow
from bnnflow.hw.ring import ring_rows
from bnnflow.hw.row_window import RowWindow


@pytest.mark.parametrize("shape, kernel, stride, rows", [
    ((5, 5, 1), (3, 3), 1, 6), ((7, 7, 1), (3, 3), 2, 6), ((8, 9, 3), (2, 3), 3, 5),
    ((5, 7, 1), (2, 2), 5, 7), ((4, 4, 2), (3, 3), 2, 7)])
def test_ring_rows(shape, kernel, stride, rows):
    # 2 kh + the rows past the last window, at least kh + s.
    assert ring_rows(shape, kernel, stride) == rows


@pytest.mark.parametrize("reader", [PixelWindow, RowWindow])
def test_readers_share_the_geometry(reader):
    dut = reader((9, 8, 3), (3, 2), 2)
    assert (dut.out_shape, dut.windows, dut.rows) == ((4, 4), 16, ring_rows((9, 8, 3), (3, 2), 2))


@pytest.mark.parametrize("reader", [PixelWindow, RowWindow])
@pytest.mark.parametrize("args, message", [
    (((4, 4, 2), (5, 1)), "kernel 5x1 does not fit a 4x4 map"),
    (((4, 4, 2), (2, 2), 0), "stride must be a positive integer, not 0"),
    (((4, 4), (2, 2)), r"in_shape must be \(H, W, C\)")])
def test_bad_parameters(reader, args, message):
    with pytest.raises(ValueError, match=message):
        reader(*args)
