"""Padding unit: the pixel stream of an ``H x W`` map in, the ``(H + 2p) x (W + 2p)`` map out.

A padded conv layer (:mod:`bnnflow.model.conventions`, "Padding") reads its map bordered by
``p`` rows above and below and ``p`` columns left and right whose every element holds the pad
code. This unit makes that border in the stream, so the sliding-window unit behind it
(:class:`~bnnflow.hw.window.SlidingWindow` on the padded shape) needs no padding logic::

    i (H * W pixels) --> [border position? pad pixel : take i] --> output register --> o

* **Output register.** ``o.payload`` and ``o.valid`` are registers. In every cycle in which the
  register is empty or being read, it loads the next pixel of the padded map: the constant pad
  pixel at a border position (taking no input), or the input pixel at an interior position
  when ``i.valid`` (``i.ready = (~o.valid | o.ready) & interior``). One pixel a cycle, latency
  1; ``o.valid`` never depends on ``o.ready`` in the same cycle, and the cycle model
  (:mod:`bnnflow.hw.timing`) steps it as a stage like the others.
* **Running ahead.** The top border of a map needs no input, so it leaves before the map's
  first pixel arrives (and the bottom border of a map right after its last pixel). Every
  window of a padded conv holds at least one interior pixel (``p < kh`` and ``p < kw``), so no
  conv output runs ahead of its input.
* **Counters.** Row and column of the position the register loads next, and a flag per axis
  for "inside the map" updated beside them, so ``i.ready`` is a gate of registers and
  ``o.ready`` (no compare of the counters on the ready path).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .folding import is_int

__all__ = ["PadMap", "border_pixel"]


class PadMap(wiring.Component):
    """A pixel stream bordered by ``pad`` rows and columns of a constant pad pixel.

    Parameters
    ----------
    in_shape : (H, W)
        The map's rows and columns (its channels are in ``pixel_bits``).
    pad : int
        ``p >= 1``, the border's width on every side.
    pixel_bits : int
        Bits of one pixel: ``C`` for binary elements, ``C * n`` for ``n``-bit elements.
    pad_pixel : int
        The border pixel, ``0 <= pad_pixel < 2**pixel_bits``: for an ``n``-bit pad code ``v``
        the code repeated in every channel, ``sum_c v << (c * n)`` (:func:`border_pixel`).

    Members
    -------
    i : In(stream.Signature(pixel_bits))
        One pixel per transfer, rows top to bottom; ``H * W`` transfers per map.
    o : Out(stream.Signature(pixel_bits))
        One pixel of the padded map per transfer, ``(H + 2p) * (W + 2p)`` per map: pixel ``(r,
        c)`` is input ``(r - p, c - p)`` inside the map, ``pad_pixel`` outside.

    Attributes
    ----------
    padded_shape : (H + 2p, W + 2p)
    latency : int
        1: edges from an input pixel's transfer to its output transfer (``o.ready`` high).

    Raises
    ------
    ValueError
        A shape, pad or pixel width that is not positive integers, or a pad pixel that does
        not fit ``pixel_bits``.
    """

    latency = 1

    def __init__(self, in_shape, pad, pixel_bits, pad_pixel=0):
        in_shape = tuple(in_shape)
        if len(in_shape) != 2 or not all(is_int(v) and v > 0 for v in in_shape):
            raise ValueError(f"in_shape must be (H, W), positive integers, not {in_shape!r}")
        if not is_int(pad) or pad < 1:
            raise ValueError(f"pad must be a positive integer, not {pad!r}")
        if not is_int(pixel_bits) or pixel_bits < 1:
            raise ValueError(f"pixel_bits must be a positive integer, not {pixel_bits!r}")
        if not is_int(pad_pixel) or not 0 <= pad_pixel < 1 << pixel_bits:
            raise ValueError(f"pad_pixel must be an integer in 0..{(1 << pixel_bits) - 1} "
                             f"({pixel_bits} bits), not {pad_pixel!r}")
        self.in_shape, self.pad, self.pad_pixel = in_shape, pad, pad_pixel
        self.padded_shape = (in_shape[0] + 2 * pad, in_shape[1] + 2 * pad)
        super().__init__({"i": In(stream.Signature(pixel_bits)),
                          "o": Out(stream.Signature(pixel_bits))})

    def elaborate(self, platform):
        m = Module()
        hp, wp = self.padded_shape
        p = self.pad
        row = Signal(range(hp), name="row")
        col = Signal(range(wp), name="col")
        # Inside the map along each axis, for the position loaded next: rows p .. p + H - 1.
        in_row = Signal(name="in_row")
        in_col = Signal(name="in_col")
        free = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(free & in_row & in_col)
        load = free & (~(in_row & in_col) | self.i.valid)
        with m.If(load):
            m.d.sync += [self.o.valid.eq(1),
                         self.o.payload.eq(Mux(in_row & in_col, self.i.payload,
                                               self.pad_pixel))]
            last_col = col == wp - 1
            next_col = Mux(last_col, 0, col + 1)
            m.d.sync += [col.eq(next_col), in_col.eq((next_col >= p) & (next_col < wp - p))]
            with m.If(last_col):
                next_row = Mux(row == hp - 1, 0, row + 1)
                m.d.sync += [row.eq(next_row),
                             in_row.eq((next_row >= p) & (next_row < hp - p))]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m


def border_pixel(code, channels, bits=1):
    """The pixel whose ``channels`` elements of ``bits`` bits all hold ``code``."""
    return sum(int(code) << (c * bits) for c in range(channels))
