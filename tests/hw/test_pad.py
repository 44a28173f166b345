# amaranth: UnusedElaboratable=no
"""The padding unit against numpy's padding, with stalls on both sides; its full-rate timing
and its parameter checks."""

import re

import numpy as np
import pytest

from bnnflow.hw.pad import PadMap, border_pixel
from bnnflow.hw.testbench import fields_of, simulate_stream
from bnnflow.model.conventions import pack_int


def padded(maps, shape, pad, code):
    """``(B * Hp * Wp, C)``: each map bordered by ``pad`` rows and columns of ``code``."""
    h, w, c = shape
    m = np.asarray(maps).reshape(-1, h, w, c)
    return np.pad(m, ((0, 0), (pad, pad), (pad, pad), (0, 0)),
                  constant_values=code).reshape(-1, c)


#: (H, W, C), pad, element bits, pad code: odd sizes, C 1 and 3, pad 1 and 2, a map of one
#: pixel, n-bit codes (all ones, and a code with both bit values).
CASES = [((3, 5, 1), 1, 1, 0), ((4, 3, 3), 2, 1, 1), ((1, 1, 3), 1, 1, 1),
         ((5, 2, 3), 1, 8, 0x5a), ((2, 3, 1), 2, 2, 3), ((3, 1, 3), 2, 3, 5)]


@pytest.mark.parametrize(("shape", "pad", "bits", "code"), CASES,
                         ids=[f"{c[0]}-p{c[1]}-n{c[2]}" for c in CASES])
@pytest.mark.parametrize(("p_valid", "p_ready", "seed"), [(1.0, 1.0, 0), (0.6, 0.5, 1)])
def test_padded_maps_match_numpy_padding_under_stalls(shape, pad, bits, code, p_valid,
                                                      p_ready, seed):
    h, w, c = shape
    maps = np.random.default_rng(seed + h * w).integers(0, 1 << bits, (3, h * w * c))
    dut = PadMap((h, w), pad, c * bits, border_pixel(code, c, bits))
    assert dut.padded_shape == (h + 2 * pad, w + 2 * pad)
    pixels = [pack_int(px, bits) for px in maps.reshape(-1, c)]
    run = simulate_stream(dut, pixels, expected_outputs=3 * (h + 2 * pad) * (w + 2 * pad),
                          seed=seed, p_valid=p_valid, p_ready=p_ready)
    assert np.array_equal(fields_of(run.outputs, c, bits), padded(maps, shape, pad, code))


def test_a_pixel_every_cycle_and_each_input_one_edge_later():
    shape, pad = (3, 4, 2), 1
    h, w, c = shape
    hp, wp = h + 2 * pad, w + 2 * pad
    dut = PadMap((h, w), pad, c, border_pixel(1, c))
    maps = np.random.default_rng(0).integers(0, 2, (2, h * w * c))
    run = simulate_stream(dut, [pack_int(px) for px in maps.reshape(-1, c)],
                          expected_outputs=2 * hp * wp)
    # The top border needs no input: the register loads at the first edge, the first pixel
    # leaves at the second, then one a cycle through both maps.
    assert run.out_edges == list(range(2, 2 + 2 * hp * wp))
    interior = [img * hp * wp + (r + pad) * wp + col + pad for img in range(2)
                for r in range(h) for col in range(w)]
    assert [run.out_edges[k] for k in interior] == [e + dut.latency for e in run.in_edges]


def test_border_pixel_repeats_the_code_in_every_channel():
    assert border_pixel(0b101, 3, 3) == 0b101_101_101
    assert border_pixel(1, 4) == 0b1111 and border_pixel(0, 5, 8) == 0


@pytest.mark.parametrize(("args", "message"), [
    (((3,), 1, 2), "in_shape must be (H, W), positive integers, not (3,)"),
    (((3, 0), 1, 2), "in_shape must be (H, W), positive integers, not (3, 0)"),
    (((3, 3), 0, 2), "pad must be a positive integer, not 0"),
    (((3, 3), 1.0, 2), "pad must be a positive integer, not 1.0"),
    (((3, 3), 1, 0), "pixel_bits must be a positive integer, not 0"),
    (((3, 3), 1, 2, 4), "pad_pixel must be an integer in 0..3 (2 bits), not 4"),
    (((3, 3), 1, 2, -1), "pad_pixel must be an integer in 0..3 (2 bits), not -1"),
])
def test_bad_parameters_are_refused(args, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        PadMap(*args)
